//! Black-box tests: the real application on a fresh PostgreSQL database per test, real
//! HTTP receivers on 127.0.0.1.

mod cli;
mod delivery;
mod endpoints;
mod filters;
mod operators;
mod ordering;
mod retries;
mod signing;
mod sql_enqueue;
mod validation;
mod workers;

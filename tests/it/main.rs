//! The one integration-test binary (as in zero2prod): every black-box test of callbackd, one
//! module per area, sharing what they need through [`support`]. One binary links the crate
//! once instead of eleven times, and `cargo test --test it api::` picks an area.
//!
//! Everything here runs in one process, on as many test threads as the machine has cores:
//! nothing may set environment variables, change the current directory, install a tracing
//! subscriber of its own (`support::logs` has the one, which keeps each thread's logs apart)
//! or bind a fixed port. Each test makes its own database (and its own
//! private PostgreSQL cluster when it stops the server) and binds port 0.

mod support;

mod api;
mod architecture;
mod auth;
mod console;
mod ingest;
mod observability;
mod partners;
mod quickstart;
mod recipes;
mod recovery;
mod reliability;
mod scaleout;

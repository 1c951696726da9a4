//! callbackd: a callback (webhook) sender backed by a PostgreSQL queue.
//! See ARCHITECTURE in the README for how the modules fit together.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod dispatch;
pub mod model;
pub mod netguard;
pub mod prometheus;
pub mod retention;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;

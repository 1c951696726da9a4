//! callbackd: a callback (webhook) sender backed by a PostgreSQL queue.
//! See ARCHITECTURE in the README for how the modules fit together.

pub mod alerts;
pub mod api;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod model;
pub mod netguard;
pub mod outbound;
pub mod prometheus;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod worker;

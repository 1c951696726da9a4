//! Every auth scheme against a receiver on 127.0.0.1 that verifies the request
//! independently, as the partner would, and refuses it when wrong; plus secrets at rest,
//! in API answers and in logs.

mod common;

mod digest;
mod jwt;
mod mtls;
mod oauth2;
mod oauth2_hostile;
mod secrets;
mod sigv4;
mod static_schemes;

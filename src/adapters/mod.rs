//! The real implementations of [`crate::ports`]: AWS through the AWS SDK, Graph and the
//! identity platform through reqwest. Endpoints come from configuration and the standard AWS
//! settings, so the same code talks to AWS and Graph in production and to moto and graph-sim
//! locally.

pub mod aws;
pub mod graph;

//! Microsoft Graph and the identity platform, over HTTPS (plain http only to loopback, checked
//! at configuration load).

mod client;
mod errors;
mod token;

pub use client::GraphClient;
pub use token::TokenProvider;

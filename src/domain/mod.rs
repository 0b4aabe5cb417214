//! Pure logic: no I/O, no clock reads, no randomness. Everything here is a function of its
//! inputs, so it is tested directly and benchmarked without a network.

pub mod authenticate;
pub mod handshake;
pub mod job;
pub mod message;
pub mod notification;
pub mod recipient;

//! graph-mail-relay: the cloud half of a fax or SMS gateway whose inbox is an Exchange Online
//! mailbox.
//!
//! Mail flows through the crate in this order:
//!
//! 1. [`usecase::accept`] — the webhook: answers Graph's validation handshake, authenticates each
//!    change notification ([`domain::authenticate`]) and puts the authentic ones on the internal
//!    queue.
//! 2. [`usecase::process`] — the processor: fetches each new message from Graph
//!    ([`adapters::graph`]), routes it by the mailbox's channel and builds a fax or SMS job
//!    ([`domain::job`]), then puts the job on the gateway's queue.
//! 3. [`usecase::subscribe`] — the timer: makes sure every configured mailbox has a recorded, live
//!    subscription.
//!
//! Pure logic lives in [`domain`]; the outside world is reached through the traits in [`ports`],
//! implemented in [`adapters`]. [`entry`] holds what the Lambda binaries, the CLI and serve mode
//! share to wire it all together.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod entry;
pub mod error;
pub mod ports;
pub mod secret;
pub mod usecase;

#[cfg(test)]
pub(crate) mod testing;

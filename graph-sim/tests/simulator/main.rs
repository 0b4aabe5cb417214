//! Black-box tests of graph-sim: each module pins the Graph or identity platform behaviour its
//! name says, against a simulator started on 127.0.0.1:0.

mod harness;
mod messages;
mod subscriptions;
mod token;

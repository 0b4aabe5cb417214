//! The webhook's accept path with no I/O: parse a notification POST, authenticate every item
//! against the subscription directory, and pack the authentic ones into queue message bodies, in
//! the order `Webhook::handle` runs these steps. The figures are recorded in
//! `docs/performance.md`; the budget is microseconds per notification and a 100-item POST well
//! under a millisecond.
//!
//! Run with `cargo bench --bench accept`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graph_mail_relay::{
    domain::authenticate::{Directory, Rejection, SubscriptionKey, client_state_digest},
    usecase::accept::{MAX_BATCH_ENTRIES, authenticate_all, pack_batch, parse_collection},
};

/// The tenant of every subscription, as in `events/`.
const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";

/// The common start of the message ids: Exchange ids of one mailbox folder differ near the end.
const MESSAGE_ID_STEM: &str = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AwNQ1x2Z8dEy5fwEbyJvP3AAAAg";

/// The gateway mailboxes' subscriptions: id, mailbox, mailbox's user id and clientState. The first
/// two are those of `events/`; a busy relay watches a few mailboxes at once.
const SUBSCRIPTIONS: [(&str, &str, &str, &str); 4] = [
    (
        "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "fax1@contoso.example",
        "5f0c1e2a-1111-2222-3333-444455556666",
        "fax-client-state-7Qx2mJ9vT4kL8pW1zR6nY3bC5dF0gHs2",
    ),
    (
        "9a3c1e55-0b7d-4f2e-8c61-5d2f7a9e3b10",
        "sms1@contoso.example",
        "6a1d2f3b-7777-8888-9999-aaaabbbbcccc",
        "sms-client-state-Lk3Vb8Nq1Wz5Xc7Mp0Rt4Yh6Gd2Fs9Aj",
    ),
    (
        "c2e4a6b8-1d3f-4a5c-9e7b-0f2d4c6e8a01",
        "fax2@contoso.example",
        "7b2e3c4d-dddd-eeee-ffff-000011112222",
        "fax-client-state-Hn5Tq8Wm2Zr4Kb7Yc1Pv6Xd3Gs9Fj0La",
    ),
    (
        "e8f0a2c4-5b7d-4e9f-8a1c-3e5b7d9f1a23",
        "sms2@contoso.example",
        "8c3f4d5e-3333-4444-5555-666677778888",
        "sms-client-state-Qw2Er4Ty6Ui8Op0As1Df3Gh5Jk7Lz9Xc",
    ),
];

/// The directory the webhook builds from the state table's subscription records.
fn directory() -> Directory {
    Directory::new(
        SUBSCRIPTIONS
            .iter()
            .map(|&(subscription_id, mailbox, _, client_state)| {
                let key = SubscriptionKey {
                    mailbox: mailbox.to_owned(),
                    tenant_id: TENANT.to_owned(),
                    client_state_sha256: client_state_digest(client_state),
                };
                (subscription_id.to_owned(), key)
            }),
    )
}

/// One `created` item in Graph's shape (as in `events/webhook-notification-batch.json`), for the
/// `n`th message, spread over the subscriptions in turn.
fn created_item(n: usize, forge: bool) -> String {
    let (subscription_id, _, user_id, client_state) = SUBSCRIPTIONS[n % SUBSCRIPTIONS.len()];
    let client_state = if forge {
        format!("forged-client-state-{n:08}")
    } else {
        client_state.to_owned()
    };
    let message_id = format!("{MESSAGE_ID_STEM}{n:05X}A=");
    let resource = format!("Users/{user_id}/Messages/{message_id}");
    // Compact, in Graph's field order; the line breaks below are not part of the string.
    format!(
        "{{\"id\": \"lsgTZMr9KwAAAAAA=\", \"subscriptionId\": \"{subscription_id}\", \
         \"subscriptionExpirationDateTime\": \"2026-12-11T09:00:00.0000000Z\", \
         \"changeType\": \"created\", \"resource\": \"{resource}\", \"tenantId\": \"{TENANT}\", \
         \"resourceData\": {{\"@odata.type\": \"#Microsoft.Graph.Message\", \
         \"@odata.id\": \"{resource}\", \
         \"@odata.etag\": \"W/\\\"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRHf\\\"\", \
         \"id\": \"{message_id}\"}}, \"clientState\": \"{client_state}\"}}"
    )
}

/// A notification POST body of `items` `created` items.
fn post(items: usize, forge: bool) -> Vec<u8> {
    let value: Vec<String> = (0..items).map(|n| created_item(n, forge)).collect();
    format!(r#"{{"value": [{}]}}"#, value.join(", ")).into_bytes()
}

/// What one POST produced: the queue message bodies and the dropped or ignored items.
struct Accepted {
    bodies: Vec<String>,
    rejected: Vec<(Option<String>, Rejection)>,
}

/// The accept path as `Webhook::handle` runs it, less the directory cache, the logs and the
/// queue call.
fn accept(body: &[u8], directory: &Directory) -> Accepted {
    let collection = parse_collection(body).expect("the benchmark's bodies are well formed");

    let acceptance = authenticate_all(&collection, directory);

    let bodies = if acceptance.queued.is_empty() {
        Vec::new()
    } else {
        pack_batch(acceptance.queued)
    };
    Accepted {
        bodies,
        rejected: acceptance.rejected,
    }
}

/// Fails the run unless the inputs do what the benchmark claims, so that it cannot silently
/// measure a path that rejects everything (or accepts forgeries).
fn check_inputs(directory: &Directory, one: &[u8], hundred: &[u8], forged: &[u8]) {
    let accepted = accept(one, directory);
    assert_eq!((accepted.bodies.len(), accepted.rejected.len()), (1, 0));

    let accepted = accept(hundred, directory);
    assert!(accepted.rejected.is_empty(), "{:?}", accepted.rejected);
    assert_eq!(accepted.bodies.len(), MAX_BATCH_ENTRIES);
    let queued: usize = accepted
        .bodies
        .iter()
        .map(|b| {
            let batch: serde_json::Value = serde_json::from_str(b).unwrap();
            batch["notifications"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(queued, 100);

    let accepted = accept(forged, directory);
    assert!(accepted.bodies.is_empty());
    assert_eq!(accepted.rejected.len(), 100);
    assert!(
        accepted
            .rejected
            .iter()
            .all(|(_, reason)| *reason == Rejection::ForgedClientState)
    );
}

fn accept_path(c: &mut Criterion) {
    let directory = directory();
    let one = post(1, false);
    let hundred = post(100, false);
    let forged = post(100, true);
    check_inputs(&directory, &one, &hundred, &forged);

    let mut group = c.benchmark_group("accept");
    for (name, items, body) in [
        ("authentic_1", 1, &one),
        ("authentic_100", 100, &hundred),
        ("forged_100", 100, &forged),
    ] {
        group.throughput(Throughput::Elements(items));
        group.bench_function(name, |b| {
            b.iter(|| accept(black_box(body), black_box(&directory)))
        });
    }
    group.finish();
}

criterion_group!(benches, accept_path);
criterion_main!(benches);

//! Security events out through the real binary: the drain function, invoked with its schedule's
//! event as EventBridge invokes it, sends what the API's requests wrote to the bus the template's
//! `EventBusName` names (the local EventBridge, whose rule feeds the test's queue), and answers
//! what it did; a bus that is not there fails no invocation and loses no event.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use local_lambda::InvokeOutcome;
use serde_json::Value;
use test_support::bus::LocalBus;
use uuid::Uuid;

use crate::helpers::{REGION, TestApi, email, template};

/// The drain: the function the template tells EVENT_BUS_NAME.
fn drain_function() -> String {
    let functions = local_lambda::Template::load(&template(), REGION).expect("template.yaml").functions;
    let drains: Vec<String> = functions
        .into_iter()
        .filter(|function| function.environment.contains_key("EVENT_BUS_NAME"))
        .map(|function| function.logical_id)
        .collect();
    assert_eq!(drains.len(), 1, "{drains:?}");
    drains[0].clone()
}

/// The drain's sample event (its schedule's), as EventBridge sends it.
fn scheduled_event() -> Bytes {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let function = local_lambda::Template::load(&template(), REGION)
        .expect("template.yaml")
        .functions
        .into_iter()
        .find(|function| function.logical_id == drain_function())
        .expect("the drain");
    let path = test_support::samples::sample_event_path(&root, &function.binary);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
}

async fn start_sending_to(bus: &str) -> TestApi {
    let bus = bus.to_owned();
    TestApi::start_with(move |config| {
        // The local EventBridge keeps a bus per region: the test's is in REGION.
        config.region = REGION.to_owned();
        config.parameters.insert("EventBusName".to_owned(), bus);
    })
    .await
}

/// Invokes the drain once and returns its answer.
async fn drain(api: &TestApi) -> Value {
    let outcome = api.emulator.invoke(&drain_function(), scheduled_event()).await.expect("an invocation");
    let InvokeOutcome::Response(payload) = outcome else { panic!("the drain failed: {outcome:?}") };
    serde_json::from_slice(&payload).expect("a JSON answer")
}

async fn event_ids(api: &TestApi) -> BTreeSet<Uuid> {
    sqlx::query_scalar("select id from security_events")
        .fetch_all(&api.db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_drain_sends_what_the_api_wrote_to_the_templates_bus_once() {
    let local = LocalBus::create(shared::events_out::SOURCE).await;
    let api = start_sending_to(&local.name).await;
    let email = email();
    assert_eq!(api.post_signup(&email).await.status, 201);
    assert_eq!(api.post_login(&email).await.status, 200);
    let written = event_ids(&api).await;
    assert!(written.len() >= 2, "{written:?}");

    let answer = drain(&api).await;
    let again = drain(&api).await;

    assert_eq!(
        (answer["sent"].as_u64(), answer["failed"].as_u64()),
        (Some(written.len() as u64), Some(0)),
        "{answer}"
    );
    assert_eq!((again["sent"].as_u64(), again["queued"].as_u64()), (Some(0), Some(0)), "{again}");
    let received = local.received().await;
    let arrived: Vec<Uuid> =
        received.iter().map(|event| event["detail"]["id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(arrived.len(), written.len(), "each once: {received:#?}");
    assert_eq!(arrived.into_iter().collect::<BTreeSet<_>>(), written);
    assert!(received.iter().all(|event| event["source"] == shared::events_out::SOURCE
        && event["detail-type"] == shared::events_out::DETAIL_TYPE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_that_is_not_there_fails_no_invocation_and_keeps_the_events() {
    let api = start_sending_to(&format!("missing-{}", Uuid::new_v4().simple())).await;
    assert_eq!(api.post_signup(&email()).await.status, 201);
    let written = event_ids(&api).await;

    let answer = drain(&api).await;

    let count = Some(written.len() as u64);
    assert_eq!(
        (answer["sent"].as_u64(), answer["failed"].as_u64(), answer["queued"].as_u64()),
        (Some(0), count, count),
        "{answer}"
    );
    let errors: Vec<Option<String>> = sqlx::query_scalar("select last_error from security_event_outbox")
        .fetch_all(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(errors.len(), written.len());
    assert!(
        errors.iter().all(|error| error.as_deref().is_some_and(|e| e.contains("ResourceNotFound"))),
        "{errors:?}"
    );
}

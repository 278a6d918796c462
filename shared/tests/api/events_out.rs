//! Security events out (issue 25, part 4): every event written reaches EventBridge through the
//! outbox its trigger fills, with its detail; an outage of EventBridge loses none of them; two
//! drains at once send each once; turned off, nothing is queued. Against the local EventBridge
//! (moto), whose rule on a bus of each test's own feeds an SQS queue the test reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::events_out::{self, Bus, DETAIL_TYPE, SOURCE};
use shared::ops::migration::{self, ApplicationRole, EventsOut};
use sqlx::PgPool;
use test_support::bus::{LocalBus, eventbridge_client, eventbridge_endpoint};
use test_support::fault_proxy::FaultProxy;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::helpers::{PASSWORD, SOURCE_IP, TestApp, address};

/// A drain's deadline far enough off never to stop it.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// The test's bus on the local EventBridge, reached at `endpoint`.
async fn bus_at(local: &LocalBus, endpoint: &str) -> Bus {
    Bus::new(eventbridge_client(endpoint).await, &local.name)
}

/// Every stored event's id.
async fn event_ids(app: &TestApp) -> BTreeSet<Uuid> {
    sqlx::query_scalar("select id from security_events")
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// The outbox: event id to (attempts, last error).
async fn outbox(app: &TestApp) -> BTreeMap<Uuid, (i32, Option<String>)> {
    let rows: Vec<(Uuid, i32, Option<String>)> =
        sqlx::query_as("select event_id, attempts, last_error from security_event_outbox")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    rows.into_iter().map(|(id, attempts, error)| (id, (attempts, error))).collect()
}

/// Makes every queued event due now, as the passing of its backoff would.
async fn backoff_passes(app: &TestApp) {
    sqlx::query("update security_event_outbox set next_attempt_at = now()").execute(&app.pool).await.unwrap();
}

/// Writes `count` events as the stores do, each user's with its session and device, in one
/// statement (the trigger's concern is the statement, not who issues it).
async fn write_events(app: &TestApp, count: i32) {
    sqlx::query(
        "insert into security_events (id, user_id, session_id, type, ip, user_agent, detail)
         select gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'login_succeeded',
                '198.51.100.7'::inet, 'test-agent', jsonb_build_object('n', n)
         from generate_series(1, $1) as n",
    )
    .bind(count)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// The delivered events' detail ids, each as often as it arrived.
fn arrivals(received: &[Value]) -> BTreeMap<Uuid, usize> {
    let mut arrivals = BTreeMap::new();
    for event in received {
        let id: Uuid = event["detail"]["id"].as_str().expect("a detail id").parse().unwrap();
        *arrivals.entry(id).or_insert(0) += 1;
    }
    arrivals
}

#[sqlx::test(migrations = "../migrations")]
async fn each_event_written_reaches_the_bus_once_with_its_detail(pool: PgPool) {
    let app = TestApp::new(pool);
    let local = LocalBus::create(SOURCE).await;
    let bus = bus_at(&local, &eventbridge_endpoint()).await;
    let email = address("out");
    app.signed_up(&email).await;
    assert_eq!(app.post_login(&email, PASSWORD).await.status, 200);
    assert_eq!(app.post_login(&email, "not the password at all").await.status, 401);
    let written: Vec<(Uuid, Uuid, Option<Uuid>, String, String)> = sqlx::query_as(
        "select id, user_id, session_id, type, to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
         from security_events order by at, id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(written.len() >= 2, "a signup and a login: {written:?}");
    assert_eq!(outbox(&app).await.len(), written.len(), "each event queued by the statement that wrote it");

    let pass = events_out::drain(&app.app, &bus, deadline()).await.unwrap();

    assert_eq!((pass.sent, pass.failed, pass.queued), (written.len() as u64, 0, 0));
    let received = local.received().await;
    assert_eq!(received.len(), written.len(), "{received:#?}");
    let by_id: BTreeMap<String, &Value> =
        received.iter().map(|event| (event["detail"]["id"].as_str().unwrap().to_owned(), event)).collect();
    for (id, user, session, kind, at) in &written {
        let event = by_id.get(&id.to_string()).unwrap_or_else(|| panic!("{kind} {id} did not arrive"));
        assert_eq!(
            (event["source"].as_str(), event["detail-type"].as_str()),
            (Some(SOURCE), Some(DETAIL_TYPE))
        );
        let detail = &event["detail"];
        assert_eq!(detail["type"], json!(kind));
        assert_eq!(detail["user_id"], json!(user));
        assert_eq!(detail["session_id"], json!(session));
        assert_eq!(detail["ip"], json!(SOURCE_IP));
        assert!(detail["detail"].is_object(), "{detail}");
        let parse = |text: &str| time::OffsetDateTime::parse(text, &Rfc3339).unwrap();
        let (sent_at, stored_at) = (parse(detail["at"].as_str().unwrap()), parse(at));
        assert_eq!(sent_at, stored_at, "the event's own time, to the microsecond");
        // The entry's `Time` is the event's, to the second (EventBridge's resolution).
        let second = stored_at.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap();
        assert_eq!(event["time"].as_str(), Some(second.as_str()));
    }
    assert!(outbox(&app).await.is_empty(), "sent events leave the outbox");
    assert_eq!(event_ids(&app).await.len(), written.len(), "and stay in security_events");

    let again = events_out::drain(&app.app, &bus, deadline()).await.unwrap();
    assert_eq!(again.sent, 0, "nothing is sent twice");
    assert!(local.received().await.is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn events_written_during_an_outage_are_kept_and_every_one_arrives_once_it_ends(pool: PgPool) {
    let app = TestApp::new(pool);
    let local = LocalBus::create(SOURCE).await;
    let proxy = FaultProxy::in_front_of(&eventbridge_endpoint()).await;
    let bus = bus_at(&local, &proxy.url()).await;
    // Before the outage: a pass that works, so the client holds a live connection to lose.
    write_events(&app, 3).await;
    assert_eq!(events_out::drain(&app.app, &bus, deadline()).await.unwrap().sent, 3);

    proxy.refuse();
    write_events(&app, 14).await;
    let first = events_out::drain(&app.app, &bus, deadline()).await.unwrap();
    write_events(&app, 6).await;
    let second = events_out::drain(&app.app, &bus, deadline()).await.unwrap();

    assert!(proxy.refused() > 0, "the outage was met");
    // A pass stops at its first failed call: one batch put off each time.
    assert_eq!((first.sent, first.failed, first.queued), (0, 10, 14));
    assert_eq!((second.sent, second.failed, second.queued), (0, 10, 20));
    let queued = outbox(&app).await;
    assert_eq!(queued.len(), 20, "every event written during the outage is kept");
    let tried: Vec<&(i32, Option<String>)> = queued.values().filter(|(attempts, _)| *attempts > 0).collect();
    assert_eq!(tried.len(), 20, "each of the two passes counted one attempt on each of its batch's events");
    assert!(
        tried
            .iter()
            .all(|(attempts, error)| *attempts == 1 && error.as_deref().is_some_and(|e| !e.is_empty()))
    );

    proxy.pass();
    let early = events_out::drain(&app.app, &bus, deadline()).await.unwrap();
    assert_eq!(early.sent, 0, "an event put off waits for its backoff, however the bus is");
    assert_eq!(early.queued, 20);
    backoff_passes(&app).await;
    let after = events_out::drain(&app.app, &bus, deadline()).await.unwrap();

    assert_eq!((after.sent, after.failed, after.queued), (20, 0, 0));
    let all = event_ids(&app).await;
    assert_eq!(all.len(), 23);
    let received = local.received().await;
    let arrived = arrivals(&received);
    let lost: Vec<&Uuid> = all.iter().filter(|id| !arrived.contains_key(id)).collect();
    assert!(lost.is_empty(), "events lost in the outage: {lost:?}");
    // The 3 before the outage were received here too (nothing read them earlier).
    assert_eq!(arrived.keys().copied().collect::<BTreeSet<_>>(), all, "each id once, after de-duplication");
    assert!(outbox(&app).await.is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn two_drains_at_once_send_each_event_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let local = LocalBus::create(SOURCE).await;
    let bus = bus_at(&local, &eventbridge_endpoint()).await;
    let other = bus_at(&local, &eventbridge_endpoint()).await;
    write_events(&app, 95).await;

    let (first, second) = tokio::join!(
        events_out::drain(&app.app, &bus, deadline()),
        events_out::drain(&app.app, &other, deadline())
    );

    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.sent + second.sent, 95, "{first:?} {second:?}");
    assert_eq!(first.failed + second.failed, 0);
    let arrived = arrivals(&local.received().await);
    assert_eq!(arrived.len(), 95);
    let twice: Vec<(&Uuid, &usize)> = arrived.iter().filter(|(_, times)| **times > 1).collect();
    assert!(twice.is_empty(), "sent by both drains: {twice:?}");
    assert_eq!(arrived.keys().copied().collect::<BTreeSet<_>>(), event_ids(&app).await);
}

#[sqlx::test(migrations = "../migrations")]
async fn with_events_out_off_the_migration_stops_queueing_and_on_again_resumes(pool: PgPool) {
    let app = TestApp::new(pool);

    let off = migration::run(&app.app, &ApplicationRole::None, EventsOut::Off).await.unwrap();
    write_events(&app, 2).await;

    assert_eq!(off["events_out"], json!(false));
    assert_eq!(event_ids(&app).await.len(), 2, "the events are written");
    assert!(outbox(&app).await.is_empty(), "and nothing is queued for a drain that is not deployed");

    let on = migration::run(&app.app, &ApplicationRole::None, EventsOut::On).await.unwrap();
    write_events(&app, 3).await;

    assert_eq!(on["events_out"], json!(true));
    assert_eq!(outbox(&app).await.len(), 3, "queued again from the migration on");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bus_that_does_not_exist_puts_the_events_off_with_its_error(pool: PgPool) {
    let app = TestApp::new(pool);
    let bus =
        Bus::new(eventbridge_client(&eventbridge_endpoint()).await, format!("missing-{}", Uuid::new_v4()));
    write_events(&app, 2).await;

    let pass = events_out::drain(&app.app, &bus, deadline()).await.unwrap();

    assert_eq!((pass.sent, pass.failed, pass.queued), (0, 2, 2));
    let queued = outbox(&app).await;
    assert!(
        queued.values().all(|(attempts, error)| *attempts == 1
            && error.as_deref().is_some_and(|error| error.contains("ResourceNotFound"))),
        "{queued:?}"
    );
    let wait: f64 = sqlx::query_scalar(
        "select extract(epoch from min(next_attempt_at) - now())::float8 from security_event_outbox",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        (20.0..=30.0).contains(&wait),
        "the first retry waits {:?}, not {wait}s",
        events_out::FIRST_RETRY_DELAY
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pass_with_no_time_left_sends_nothing_and_still_reports_the_backlog(pool: PgPool) {
    let app = TestApp::new(pool);
    let local = LocalBus::create(SOURCE).await;
    let bus = bus_at(&local, &eventbridge_endpoint()).await;
    write_events(&app, 4).await;

    let pass = events_out::drain(&app.app, &bus, Instant::now() + events_out::MARGIN / 2).await.unwrap();

    assert_eq!((pass.sent, pass.queued), (0, 4));
    assert!(local.received().await.is_empty());
}

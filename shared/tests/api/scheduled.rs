//! The scheduled health check: EventBridge events are accepted and purge old tokens in bounded,
//! concurrent-safe batches; other events are refused.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::helpers::{TestApp, call};
use lambda_http::RequestExt as _;
use serde_json::json;
use shared::handlers::health;
use shared::http::Request;
use shared::ops::maintenance;
use sqlx::PgPool;

/// An EventBridge schedule, read by lambda_http as the function's runtime reads it.
fn scheduled_event() -> Request {
    let event = json!({
        "version": "0", "id": "5e1f", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-27T05:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/health"], "detail": {}
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// A session with `old` tokens revoked 8 days ago and `fresh` tokens revoked just now.
async fn seed_tokens(app: &TestApp, old: i64, fresh: i64) {
    let refresh = app.signed_up("seed@example.com").await.refresh_token();
    assert_eq!(app.post_logout(&refresh).await.status, 204);
    sqlx::query(
        "insert into refresh_tokens (token_hash, session_id, expires_at, revoked_at)
         select sha256(('token-' || n)::bytea), s.id, now() + interval '30 days',
                case when n <= $1 then now() - interval '8 days' else now() end
         from generate_series(1, $1 + $2) as n, sessions as s",
    )
    .bind(old)
    .bind(fresh)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduled_check_purges_only_long_revoked_tokens(pool: PgPool) {
    let app = TestApp::new(pool);
    seed_tokens(&app, 2_500, 40).await;

    let response = call(&app.app, health::handle, scheduled_event()).await;

    assert_eq!(response.status, 200);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 41, "40 fresh and signup's own");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_purges_at_once_both_finish_and_delete_each_row_once(pool: PgPool) {
    let app = TestApp::new(pool);
    seed_tokens(&app, 3_000, 10).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let (first, second) =
        tokio::join!(maintenance::purge(&app.app, deadline), maintenance::purge(&app.app, deadline));

    assert_eq!(first + second, 3_000);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 11);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_deletes_at_most_twenty_batches_and_the_next_run_takes_the_rest(pool: PgPool) {
    let app = TestApp::new(pool);
    let rounds = maintenance::PURGE_MAX_BATCHES as i64;
    let backlog = (rounds + 5) * maintenance::PURGE_BATCH;
    seed_tokens(&app, backlog, 10).await;
    let deadline = || Instant::now() + Duration::from_secs(600);

    let first = maintenance::purge(&app.app, deadline()).await;

    assert_eq!(first as i64, rounds * maintenance::PURGE_BATCH);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 5 * maintenance::PURGE_BATCH + 11);
    let second = maintenance::purge(&app.app, deadline()).await;
    assert_eq!(second as i64, 5 * maintenance::PURGE_BATCH);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 11);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_purge_starts_no_batch_too_close_to_its_deadline_and_the_next_run_resumes(pool: PgPool) {
    let app = TestApp::new(pool);
    seed_tokens(&app, 1_500, 10).await;

    let late = maintenance::purge(&app.app, Instant::now() + maintenance::PURGE_MARGIN / 2).await;

    assert_eq!(late, 0);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 1_511);
    let next = maintenance::purge(&app.app, Instant::now() + Duration::from_secs(10)).await;
    assert_eq!(next, 1_500);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_deadline_comes_from_the_invocation_context(pool: PgPool) {
    let app = TestApp::new(pool);
    seed_tokens(&app, 1_500, 10).await;
    let event_due_in = |left: Duration| {
        let mut context = lambda_runtime::Context::default();
        let deadline = SystemTime::now() + left;
        context.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        scheduled_event().with_lambda_context(context)
    };

    let response = call(&app.app, health::handle, event_due_in(maintenance::PURGE_MARGIN / 2)).await;

    assert_eq!(response.status, 200, "the check itself still answers");
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 1_511);
    call(&app.app, health::handle, event_due_in(Duration::from_secs(10))).await;
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 11);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_from_another_source_is_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let event = json!({"Records": [{"eventSource": "aws:sqs"}]});
    let event = lambda_http::request::from_str(&event.to_string()).unwrap();

    let response = call(&app.app, health::handle, event).await;

    assert_eq!(response.status, 400);
}

/// Signs up `email` and returns its session's id.
async fn session_of(app: &TestApp, email: &str) -> uuid::Uuid {
    app.signed_up(email).await;
    sqlx::query_scalar(
        "select s.id from sessions as s join users as u on u.id = s.user_id where u.email = $1",
    )
    .bind(email)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn run_sql(app: &TestApp, sql: &'static str, session: uuid::Uuid) {
    sqlx::query(sql).bind(session).execute(&app.pool).await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduled_check_purges_sessions_that_ended_long_ago_and_keeps_the_rest(pool: PgPool) {
    let app = TestApp::new(pool);
    // Past the 90-day lifetime by more than the 7-day retention, and by less.
    let expired_long_ago = session_of(&app, "expired-long-ago@example.com").await;
    run_sql(
        &app,
        "update sessions set created_at = now() - interval '97 days 1 hour' where id = $1",
        expired_long_ago,
    )
    .await;
    let expired_lately = session_of(&app, "expired-lately@example.com").await;
    run_sql(
        &app,
        "update sessions set created_at = now() - interval '96 days' where id = $1",
        expired_lately,
    )
    .await;
    // Its one usable token expired unused more than the retention ago, and less.
    let abandoned_long_ago = session_of(&app, "abandoned-long-ago@example.com").await;
    run_sql(
        &app,
        "update refresh_tokens set expires_at = now() - interval '8 days' where session_id = $1",
        abandoned_long_ago,
    )
    .await;
    let abandoned_lately = session_of(&app, "abandoned-lately@example.com").await;
    run_sql(
        &app,
        "update refresh_tokens set expires_at = now() - interval '6 days' where session_id = $1",
        abandoned_lately,
    )
    .await;
    let live = session_of(&app, "live@example.com").await;

    let response = call(&app.app, health::handle, scheduled_event()).await;

    assert_eq!(response.status, 200);
    let mut left: Vec<uuid::Uuid> =
        sqlx::query_scalar("select id from sessions").fetch_all(&app.pool).await.unwrap();
    let mut expected = vec![expired_lately, abandoned_lately, live];
    left.sort_unstable();
    expected.sort_unstable();
    assert_eq!(left, expected);
    assert_eq!(
        app.count("select count(*) from refresh_tokens").await,
        3,
        "the purged sessions' tokens went with them"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduled_check_purges_login_attempts_quiet_for_a_day(pool: PgPool) {
    let app = TestApp::new(pool);
    sqlx::query(
        "insert into login_attempts (email, failed_count, last_failed_at)
         select 'guess-' || n || '@example.com', 3,
                case when n <= 2500 then now() - interval '24 hours 1 minute' else now() - interval '23 hours' end
         from generate_series(1, 2510) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let response = call(&app.app, health::handle, scheduled_event()).await;

    assert_eq!(response.status, 200);
    assert_eq!(app.count("select count(*) from login_attempts").await, 10);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduled_check_purges_expired_mfa_tokens_and_undo_links(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    sqlx::query(
        "insert into mfa_tokens (token_hash, user_id, expires_at)
         select sha256(('token-' || n)::bytea), (select id from users),
                now() + case when n <= 2500 then interval '-1 second' else interval '4 minutes' end
         from generate_series(1, 2510) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    sqlx::query(
        "insert into security_undo_tokens (token_hash, user_id, change, code_hashes, expires_at)
         select sha256(('undo-' || n)::bytea), (select id from users), 'factor_added', '{}',
                now() + case when n <= 3 then interval '-1 second' else interval '7 days' end
         from generate_series(1, 5) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let response = call(&app.app, health::handle, scheduled_event()).await;

    assert_eq!(response.status, 200);
    assert_eq!(app.count("select count(*) from mfa_tokens").await, 10);
    assert_eq!(app.count("select count(*) from security_undo_tokens").await, 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduled_check_purges_expired_passkey_registrations_and_spent_sign_in_ceremonies(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    sqlx::query(
        "insert into webauthn_used_challenges (challenge_hash, expires_at)
         select sha256(('spent-' || n)::bytea),
                now() + case when n <= 2500 then interval '-1 second' else interval '4 minutes' end
         from generate_series(1, 2507) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into webauthn_challenges (challenge_hash, user_id, session_id, state, expires_at)
         select sha256(('registration-' || n)::bytea), (select id from users), gen_random_uuid(), '{}',
                now() + case when n <= 4 then interval '-1 second' else interval '4 minutes' end
         from generate_series(1, 6) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let response = call(&app.app, health::handle, scheduled_event()).await;

    assert_eq!(response.status, 200);
    assert_eq!(app.count("select count(*) from webauthn_used_challenges").await, 7);
    assert_eq!(app.count("select count(*) from webauthn_challenges").await, 2, "a live registration stays");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduled_check_purges_security_events_past_their_retention(pool: PgPool) {
    let app = TestApp::new(pool);
    sqlx::query(
        "insert into security_events (id, user_id, type, at)
         select gen_random_uuid(), gen_random_uuid(), 'signup',
                now() - case when n <= 1500 then interval '401 days' else interval '399 days' end
         from generate_series(1, 1503) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let response = call(&app.app, health::handle, scheduled_event()).await;

    assert_eq!(response.status, 200);
    assert_eq!(app.count("select count(*) from security_events").await, 3, "within 400 days, kept");
}

//! The scheduled health check: EventBridge events are accepted and purge old tokens in bounded,
//! concurrent-safe batches; other events are refused.

mod common;

use common::TestApp;
use serde_json::json;
use shared::handlers::health::{self, HealthEvent};
use sqlx::PgPool;

fn scheduled_event() -> HealthEvent {
    serde_json::from_value(json!({
        "version": "0", "id": "5e1f", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-27T05:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/health"], "detail": {}
    }))
    .unwrap()
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

    let response = health::handle(&app.app, scheduled_event()).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 41, "40 fresh and signup's own");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_purges_at_once_both_finish_and_delete_each_row_once(pool: PgPool) {
    let app = TestApp::new(pool);
    seed_tokens(&app, 3_000, 10).await;

    let (first, second) = tokio::join!(health::purge(&app.app), health::purge(&app.app));

    assert_eq!(first + second, 3_000);
    assert_eq!(app.count("select count(*) from refresh_tokens").await, 11);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_from_another_source_is_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let event: HealthEvent =
        serde_json::from_value(json!({"Records": [{"eventSource": "aws:sqs"}]})).unwrap();

    let response = health::handle(&app.app, event).await;

    assert_eq!(response.status_code, 400);
}

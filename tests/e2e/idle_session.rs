//! The database closes connections left idle (`idle_session_timeout`, as docs/deploy.md advises for
//! connections held by frozen sandboxes): the warm sandbox's kept connection, idle for longer
//! than DB_PING_AFTER_IDLE_MS, is pinged before use, found closed and replaced, so the request
//! after the server closed it succeeds.

use std::time::Duration;

use crate::helpers::{TestApi, TestDb, email, eventually, server_lock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_closed_by_idle_session_timeout_is_replaced_and_the_next_request_succeeds() {
    let lock = server_lock(false);
    let db = TestDb::create().await;
    // The name is ours (letters and hex digits), not input: safe to splice.
    let timeout =
        sqlx::AssertSqlSafe(format!("alter database {} set idle_session_timeout = '1500ms'", db.name));
    sqlx::raw_sql(timeout).execute(&db.pool).await.expect("setting idle_session_timeout");
    let api = TestApi::start_on(db, lock, |config| {
        config.env_overrides.set_for_all("DB_PING_AFTER_IDLE_MS", "1000");
    })
    .await;
    let user = email();
    assert_eq!(api.post_signup(&user).await.status, 201);
    assert_eq!(api.post_login(&user).await.status, 200);
    let login = api.function_name("LoginFunction");
    let before = api.db.backends(&login).await;
    assert_eq!(before.len(), 1, "the login sandbox keeps one connection: {before:?}");

    eventually("the server to close the idle connection", Duration::from_secs(10), || async {
        api.db.backends(&login).await.is_empty().then_some(())
    })
    .await;
    let again = api.post_login(&user).await;

    assert_eq!(again.status, 200, "{}", again.text);
    let sandbox = api.only_sandbox("LoginFunction");
    assert_eq!(sandbox.invocations, 2, "the same warm sandbox served both logins");
    let after = api.db.backends(&login).await;
    assert!(
        after.len() == 1 && after != before,
        "a new connection replaced the closed one: {before:?} -> {after:?}"
    );
}

//! Lambda Managed Instances: one sandbox per function serving up to N invocations at once
//! (`AWS_LAMBDA_MAX_CONCURRENCY`). 32 concurrent requests of every kind go to sandboxes with
//! N = 8: every answer is checked, each function stays in one sandbox that really served
//! requests side by side, and no function ever holds more than N connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::helpers::{TestApi, TestResponse, email};
use futures_util::future::join_all;
use sqlx::PgPool;

const N: u32 = 8;
const REQUESTS: usize = 32;

const FUNCTIONS: [&str; 5] =
    ["SignupFunction", "LoginFunction", "RefreshFunction", "MeFunction", "LogoutFunction"];

/// The most connections any one function held at once, sampled until `stop` is set.
fn watch_connections(
    api: &TestApi,
    stop: Arc<AtomicBool>,
    most: Arc<AtomicI64>,
) -> tokio::task::JoinHandle<()> {
    let (pool, names): (PgPool, Vec<String>) =
        (api.db.pool.clone(), FUNCTIONS.iter().map(|function| api.function_name(function)).collect());
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let busiest: Option<i64> = sqlx::query_scalar(
                "select max(n) from (select count(*) as n from pg_stat_activity
                  where application_name = any($1) group by application_name) as per_function",
            )
            .bind(&names)
            .fetch_one(&pool)
            .await
            .unwrap_or_default();
            most.fetch_max(busiest.unwrap_or_default(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

async fn all<F: std::future::Future<Output = TestResponse>>(
    requests: impl Iterator<Item = F>,
) -> Vec<TestResponse> {
    join_all(requests).await
}

fn statuses(responses: &[TestResponse]) -> Vec<u16> {
    responses.iter().map(|response| response.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sandbox_per_function_serves_eight_invocations_at_once_with_at_most_eight_connections() {
    let api = TestApi::start_with(|config| config.max_concurrency = N).await;
    let (stop, most) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI64::new(0)));
    let watcher = watch_connections(&api, stop.clone(), most.clone());

    // Signups: 28 new emails and 4 racing for one; exactly one of the 4 wins.
    let racing = email();
    let emails: Vec<String> = (0..REQUESTS - 4).map(|_| email()).collect();
    let signups =
        all(emails.iter().chain(std::iter::repeat_n(&racing, 4)).map(|email| api.post_signup(email))).await;
    assert!(signups[..REQUESTS - 4].iter().all(|r| r.status == 201), "{:?}", statuses(&signups));
    let mut race = statuses(&signups[REQUESTS - 4..]);
    race.sort_unstable();
    assert_eq!(race, [201, 409, 409, 409]);

    // Logins: a new session for each of the 32 (the race's winner included).
    let logins =
        all(emails.iter().chain(std::iter::repeat_n(&racing, 4)).map(|email| api.post_login(email))).await;
    assert!(logins.iter().all(|r| r.status == 200), "{:?}", statuses(&logins));

    // Refreshes: 16 distinct sessions once each, and one session's token 16 times at once
    // (inside the grace window: all 16 get the one same successor).
    let raced = logins[0].refresh_token();
    let tokens: Vec<String> = logins[1..=16]
        .iter()
        .map(TestResponse::refresh_token)
        .chain(std::iter::repeat_n(raced, 16))
        .collect();
    let refreshes = all(tokens.iter().map(|token| api.post_refresh(token))).await;
    assert!(refreshes.iter().all(|r| r.status == 200), "{:?}", statuses(&refreshes));
    let successor = refreshes[16].refresh_token();
    assert!(refreshes[16..].iter().all(|r| r.refresh_token() == successor), "one successor for the race");

    // Me: every access token of the logins reads its own user.
    let access: Vec<String> = logins.iter().map(TestResponse::access_token).collect();
    let mes = all(access.iter().map(|token| api.get_me(token))).await;
    for (me, login) in mes.iter().zip(&logins) {
        assert_eq!((me.status, &me.body["id"]), (200, &login.body["user"]["id"]), "{}", me.text);
    }

    // Logouts: the 16 refreshed sessions with their new tokens, then 16 more with the logins'.
    let logout_tokens: Vec<String> = refreshes[..16]
        .iter()
        .map(TestResponse::refresh_token)
        .chain(logins[17..].iter().map(TestResponse::refresh_token))
        .chain(std::iter::once(successor.clone()))
        .collect();
    let logouts = all(logout_tokens.iter().map(|token| api.post_logout(token))).await;
    assert!(logouts.iter().all(|r| r.status == 204), "{:?}", statuses(&logouts));
    assert_eq!(api.post_refresh(&successor).await.status, 401, "a logged-out session cannot refresh");

    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    for function in FUNCTIONS {
        let sandbox = api.only_sandbox(function);
        assert!(sandbox.invocations >= REQUESTS as u64, "{function}: {sandbox:?}");
        assert!(!sandbox.frozen, "{function}: Managed Instances do not freeze");
    }
    let most = most.load(Ordering::SeqCst);
    assert!((2..=i64::from(N)).contains(&most), "a function held {most} connections at once");
}

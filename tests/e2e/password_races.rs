//! Logins with the old password from several clients at once, each on a sandbox of its own,
//! across a password reset or change: the login that was checking the password when the new
//! one landed must neither keep a session nor, when the stored hash had outdated parameters
//! (a login then writes an upgraded hash), put the old password back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use futures_util::future::join_all;
use http::Method;
use serde_json::json;

use crate::helpers::{TestApi, TestResponse, email};
use test_support::{PASSWORD, link_token, sent_mail, verify_mail_identity};

const NEW_PASSWORD: &str = "violet tractor umbrella sunrise";

/// Clients logging in at once, each in a loop.
const CLIENTS: usize = 6;

/// What replaces the password while the old one is being tried.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Replacement {
    /// A reset through the link of a forgot-password mail.
    Reset,
    /// A change by the signed-in owner.
    Change,
}

/// A login answer and when its request went out and came back.
struct Attempt {
    response: TestResponse,
    sent: Instant,
    answered: Instant,
}

/// The user's password hash set to `PASSWORD` under older argon2 parameters (8 MiB, 3 passes),
/// which a successful login replaces with an upgraded hash.
async fn give_an_outdated_hash(api: &TestApi, address: &str) {
    let params = Params::new(8_192, 3, 1, None).expect("argon2 parameters");
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes())
        .expect("hashing")
        .to_string();
    let updated = sqlx::query("update users set password_hash = $2 where email = $1")
        .bind(address)
        .bind(hash)
        .execute(&api.db.pool)
        .await
        .expect("setting an outdated hash");
    assert_eq!(updated.rows_affected(), 1);
}

async fn login(api: &TestApi, address: &str, password: &str) -> TestResponse {
    api.post_json("/auth/login", &json!({ "email": address, "password": password })).await
}

/// One client: logs in with the old password again and again, until `done` is set and one of
/// its answers was a refusal (every attempt that started before the replacement landed has then
/// answered).
async fn keep_logging_in(api: &TestApi, address: &str, done: &AtomicBool) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        let sent = Instant::now();
        let response = login(api, address, PASSWORD).await;
        let refused = response.status != 200;
        attempts.push(Attempt { response, sent, answered: Instant::now() });
        if finished && refused {
            return attempts;
        }
    }
}

async fn old_password_logins_across(replacement: Replacement, outdated: bool) {
    verify_mail_identity().await;
    let outbox = std::env::temp_dir().join(format!("outbox-{}", uuid::Uuid::new_v4().simple()));
    let api =
        TestApi::start_with(|config| crate::account::with_mail(config, test_support::MAIL_FROM, &outbox))
            .await;
    let address = email();
    let signup = api.post_signup(&address).await;
    assert_eq!(signup.status, 201, "{}", signup.text);
    let reset_token = if replacement == Replacement::Reset {
        api.post_json("/auth/password/forgot", &json!({ "email": address })).await;
        Some(link_token(&sent_mail(&address).await[1]))
    } else {
        None
    };
    // One warm sandbox per client: a cold start does not decide who is first.
    let warm = join_all((0..CLIENTS).map(|_| api.post_login(&address))).await;
    assert!(warm.iter().all(|r| r.status == 200), "{:?}", warm.iter().map(|r| r.status).collect::<Vec<_>>());
    if outdated {
        give_an_outdated_hash(&api, &address).await;
    }

    let done = AtomicBool::new(false);
    let replace = async {
        let started = Instant::now();
        let response = match replacement {
            Replacement::Reset => {
                let body =
                    json!({ "token": reset_token.as_deref().expect("a link"), "password": NEW_PASSWORD });
                api.post_json("/auth/password/reset", &body).await
            }
            Replacement::Change => {
                let body = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
                api.bearer(Method::POST, "/auth/password/change", &signup.access_token(), Some(body)).await
            }
        };
        done.store(true, Ordering::SeqCst);
        (response, started, Instant::now())
    };
    let clients = join_all((0..CLIENTS).map(|_| keep_logging_in(&api, &address, &done)));
    let ((replaced, replace_sent, landed), clients) = tokio::join!(replace, clients);
    let attempts: Vec<Attempt> = clients.into_iter().flatten().collect();

    let expected = match replacement {
        Replacement::Reset => 200,
        Replacement::Change => 204,
    };
    assert_eq!(replaced.status, expected, "{}", replaced.text);
    // The race was run: logins were being checked when the new password landed.
    let straddling = attempts.iter().filter(|a| a.sent < landed && a.answered > replace_sent).count();
    assert!(straddling >= 1, "no login was in flight across the {replacement:?}");
    let statuses: Vec<u16> = attempts.iter().map(|a| a.response.status).collect();
    assert!(statuses.iter().all(|s| [200, 401, 429].contains(s)), "{statuses:?}");

    // The new password stands (the refusals above counted failures: start the count again).
    sqlx::query("delete from login_attempts").execute(&api.db.pool).await.expect("clearing the count");
    assert_eq!(login(&api, &address, PASSWORD).await.status, 401, "the old password came back");

    // One live session: the reset's own, or the one the change was made from.
    let live: Vec<uuid::Uuid> = sqlx::query_scalar(
        "select s.id from sessions s join users u on u.id = s.user_id where u.email = $1 and s.revoked_at is null",
    )
    .bind(&address)
    .fetch_all(&api.db.pool)
    .await
    .expect("the live sessions");
    let kept = match replacement {
        Replacement::Reset => replaced.refresh_token(),
        Replacement::Change => signup.refresh_token(),
    };
    let logged_in = attempts.iter().filter(|a| a.response.status == 200).count();
    assert_eq!(live.len(), 1, "{logged_in} old-password logins; live sessions {live:?}");
    for attempt in attempts.iter().filter(|a| a.response.status == 200) {
        let refreshed = api.post_refresh(&attempt.response.refresh_token()).await;
        assert_eq!(refreshed.status, 401, "an old-password session lives on");
    }
    assert_eq!(api.post_refresh(&kept).await.status, 200, "the {replacement:?}'s session goes on");
    assert_eq!(login(&api, &address, NEW_PASSWORD).await.status, 200, "the new password stands");
}

#[tokio::test]
async fn old_password_logins_racing_a_reset_keep_no_session() {
    old_password_logins_across(Replacement::Reset, false).await;
}

#[tokio::test]
async fn old_password_logins_racing_a_reset_keep_no_session_nor_restore_an_outdated_hash() {
    old_password_logins_across(Replacement::Reset, true).await;
}

#[tokio::test]
async fn old_password_logins_racing_a_change_keep_no_session() {
    old_password_logins_across(Replacement::Change, false).await;
}

#[tokio::test]
async fn old_password_logins_racing_a_change_keep_no_session_nor_restore_an_outdated_hash() {
    old_password_logins_across(Replacement::Change, true).await;
}

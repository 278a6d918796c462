//! The second factor's statements against a real Postgres: replacement, confirmation, and each
//! code accepted once however many requests race with it.

use crate::helpers::TestApp;
use shared::accounts::store::{Attempt, Opening, PendingSignIn, Started, start_session};
use shared::domain::{Actor, Assurance, Device, Email, FactorId, MailKind, SessionId, UserId};
use shared::mfa::recovery::{self, RecoveryCode};
use shared::mfa::seal::{SealingKeys, generate_key};
use shared::mfa::store::{self, Change, CodeAdmission, NewSessionAt, Presenter, StoredFactor, UndoToken};
use shared::mfa::totp::TotpSecret;
use shared::sessions::store::NewSession;
use shared::tokens::{MailToken, TokenHash};
use sqlx::PgPool;

fn keys() -> SealingKeys {
    let ring = serde_json::json!({"current": "k1", "keys": {"k1": generate_key().unwrap()}});
    SealingKeys::from_json(&ring.to_string()).unwrap()
}

async fn user(app: &TestApp, email: &str) -> UserId {
    let body = app.signed_up(email).await.body;
    UserId(body["user"]["id"].as_str().unwrap().parse().unwrap())
}

/// A code presented at sign-in (the statements key the backoff they clear by it).
const SIGN_IN: Presenter<'static> = Presenter::Token(&TokenHash([0; 32]));

/// The device of the statements these tests run directly.
static NO_DEVICE: Device = Device { user_agent: None, ip: None };

/// A change made in `session`, from no device.
fn by(session: SessionId) -> Actor<'static> {
    Actor { session, device: &NO_DEVICE }
}

/// A fresh undo link's hash.
fn hash() -> TokenHash {
    MailToken::generate().unwrap().hash()
}

/// An undo link of `hash`, for a minute.
fn undo(hash: &TokenHash) -> UndoToken<'_> {
    UndoToken { token: hash, ttl: std::time::Duration::from_secs(60) }
}

/// The session `user`'s signup opened.
async fn session_of(app: &TestApp, user: UserId) -> SessionId {
    SessionId(
        sqlx::query_scalar("select id from sessions where user_id = $1")
            .bind(user.0)
            .fetch_one(&app.pool)
            .await
            .unwrap(),
    )
}

/// The factor a code of `user` is checked against, as the code's admission reads it: the
/// enrolment `pending`, or the live factor.
async fn factor_of(app: &TestApp, user: UserId, pending: Option<FactorId>) -> Option<StoredFactor> {
    let session = session_of(app, user).await;
    let mut db = app.app.connection().await.unwrap();
    match store::admit_code(&mut db, Presenter::Session { user, session }, pending).await.unwrap() {
        CodeAdmission::Admitted { factor, .. } => factor,
        _ => panic!("the code was not admitted"),
    }
}

/// A pending factor of `user`, its secret sealed for its row.
async fn enrol(app: &TestApp, keys: &SealingKeys, user: UserId) -> (FactorId, TotpSecret) {
    let (id, secret) = (FactorId::generate(), TotpSecret::generate().unwrap());
    let sealed = keys.seal(secret.expose(), &id.seal_context(user)).unwrap();
    let mut db = app.app.connection().await.unwrap();
    store::replace_pending_factor(&mut db, user, id, &sealed).await.unwrap();
    (id, secret)
}

/// Runs `attempt(app, n)` for `n` in `0..times`, all at once, each task on its own connection;
/// returns how many of them it did (`true`), with every outcome.
async fn at_once<F, Fut>(app: &TestApp, times: u64, attempt: F) -> (usize, Vec<bool>)
where
    F: Fn(TestApp, u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let tasks = (0..times).map(|n| tokio::spawn(attempt(app.clone(), n)));
    let outcomes: Vec<bool> =
        futures_util::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    (outcomes.iter().filter(|&&did| did).count(), outcomes)
}

/// A live factor of `user`, confirmed at `step` with `code_hashes` as its recovery codes.
async fn live(
    app: &TestApp,
    keys: &SealingKeys,
    user: UserId,
    step: u64,
    code_hashes: &[Vec<u8>],
) -> FactorId {
    let (id, _) = enrol(app, keys, user).await;
    let session = session_of(app, user).await;
    let mut db = app.app.connection().await.unwrap();
    assert!(
        store::confirm_factor(&mut db, user, id, step, code_hashes, by(session), undo(&hash()))
            .await
            .unwrap()
            == Change::Done
    );
    id
}

async fn count(app: &TestApp, sql: &'static str, user: UserId) -> i64 {
    sqlx::query_scalar(sql).bind(user.0).fetch_one(&app.pool).await.unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_later_enrolment_replaces_the_pending_one_and_its_secret_opens_only_in_its_row(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice, bob) =
        (keys(), user(&app, "alice@example.com").await, user(&app, "bob@example.com").await);

    let (first, _) = enrol(&app, &keys, alice).await;
    let (second, secret) = enrol(&app, &keys, alice).await;
    let stale = factor_of(&app, alice, Some(first)).await;
    let pending = factor_of(&app, alice, Some(second)).await.expect("the latest enrolment");
    let not_bobs = factor_of(&app, bob, Some(second)).await;

    assert!(stale.is_none() && not_bobs.is_none());
    assert_eq!(count(&app, "select count(*) from mfa_factors where user_id = $1", alice).await, 1);
    assert_eq!(keys.open(&pending.sealed, &second.seal_context(alice)).unwrap(), secret.expose());
    assert!(keys.open(&pending.sealed, &second.seal_context(bob)).is_err(), "bound to alice's row");
}

#[sqlx::test(migrations = "../migrations")]
async fn ten_concurrent_confirmations_make_one_live_factor_with_one_set_of_codes(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice) = (keys(), user(&app, "alice@example.com").await);
    let (id, _) = enrol(&app, &keys, alice).await;
    let session = session_of(&app, alice).await;

    let (confirmed, outcomes) = at_once(&app, 10, |app, n| async move {
        let codes: Vec<Vec<u8>> = recovery::generate_set().unwrap().iter().map(RecoveryCode::hash).collect();
        let mut db = app.app.connection().await.unwrap();
        store::confirm_factor(&mut db, alice, id, 1_000 + n, &codes, by(session), undo(&hash()))
            .await
            .unwrap()
            == Change::Done
    })
    .await;

    assert_eq!(confirmed, 1, "{outcomes:?}");
    assert_eq!(count(&app, "select count(*) from recovery_codes where user_id = $1", alice).await, 10);
    let live = factor_of(&app, alice, None).await.expect("a live factor");
    let mut db = app.app.connection().await.unwrap();
    assert_eq!(live.id, id);
    assert!(live.last_used_step.is_some_and(|step| (1_000..1_010).contains(&step)));
    // A new enrolment is pending beside the live factor; it cannot go live while one is.
    let (next, _) = enrol(&app, &keys, alice).await;
    let again =
        store::confirm_factor(&mut db, alice, next, 2_000, &[], by(session), undo(&hash())).await.unwrap();
    assert_eq!(again, Change::Missing);
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_uses_of_one_totp_step_accept_it_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice) = (keys(), user(&app, "alice@example.com").await);
    let id = live(&app, &keys, alice, 100, &[]).await;

    let (accepted, outcomes) = at_once(&app, 20, |app, _| async move {
        let mut db = app.app.connection().await.unwrap();
        store::accept_step(&mut db, id, 101, SIGN_IN, &NO_DEVICE).await.unwrap()
    })
    .await;

    assert_eq!(accepted, 1, "{outcomes:?}");
    let mut db = app.app.connection().await.unwrap();
    assert!(!store::accept_step(&mut db, id, 100, SIGN_IN, &NO_DEVICE).await.unwrap(), "an earlier step");
    assert!(!store::accept_step(&mut db, id, 101, SIGN_IN, &NO_DEVICE).await.unwrap(), "the same step again");
    assert!(store::accept_step(&mut db, id, 102, SIGN_IN, &NO_DEVICE).await.unwrap(), "the next step");
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_uses_of_one_recovery_code_spend_it_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice, bob) =
        (keys(), user(&app, "alice@example.com").await, user(&app, "bob@example.com").await);
    let codes = recovery::generate_set().unwrap();
    let hashes: Vec<Vec<u8>> = codes.iter().map(RecoveryCode::hash).collect();
    live(&app, &keys, alice, 1, &hashes).await;
    let typed = codes[3].expose().to_lowercase();

    let (spent, outcomes) = at_once(&app, 20, |app, _| {
        let typed = typed.clone();
        async move {
            let mut db = app.app.connection().await.unwrap();
            let hash = recovery::hash_presented(&typed).unwrap();
            store::use_recovery_code(&mut db, alice, &hash, SIGN_IN, &NO_DEVICE).await.unwrap()
        }
    })
    .await;

    assert_eq!(spent, 1, "{outcomes:?}");
    let mut db = app.app.connection().await.unwrap();
    assert!(
        !store::use_recovery_code(&mut db, bob, &hashes[4], SIGN_IN, &NO_DEVICE).await.unwrap(),
        "not bob's code"
    );
    assert!(
        store::use_recovery_code(&mut db, alice, &hashes[4], SIGN_IN, &NO_DEVICE).await.unwrap(),
        "another of alice's"
    );
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select code_hash from recovery_codes").fetch_all(&app.pool).await.unwrap();
    assert!(stored.iter().all(|hash| hash.len() == 32), "only SHA-256 hashes are stored");
}

#[sqlx::test(migrations = "../migrations")]
async fn deleting_the_account_takes_its_factor_and_codes(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice) = (keys(), user(&app, "alice@example.com").await);
    let hashes: Vec<Vec<u8>> = recovery::generate_set().unwrap().iter().map(RecoveryCode::hash).collect();
    live(&app, &keys, alice, 1, &hashes).await;

    sqlx::query("delete from users where id = $1").bind(alice.0).execute(&app.pool).await.unwrap();

    assert_eq!(count(&app, "select count(*) from mfa_factors where user_id = $1", alice).await, 0);
    assert_eq!(count(&app, "select count(*) from recovery_codes where user_id = $1", alice).await, 0);
}

/// What a login and a reset open: a session, or a sign-in waiting for the factor.
fn opening<'a>(device: &'a Device, refresh: &'a TokenHash, pending: &'a TokenHash) -> Opening<'a> {
    let ttl = std::time::Duration::from_secs(3600);
    Opening {
        session: NewSession { id: SessionId::generate(), token: refresh, ttl, device },
        pending: PendingSignIn { token: pending, ttl },
    }
}

async fn live_sessions(app: &TestApp, user: UserId) -> i64 {
    count(app, "select count(*) from sessions where user_id = $1 and revoked_at is null", user).await
}

#[sqlx::test(migrations = "../migrations")]
async fn logins_racing_a_confirmation_keep_no_session_without_the_factor(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice) = (keys(), user(&app, "alice@example.com").await);
    let session = session_of(&app, alice).await;
    let email = Email::parse("alice@example.com").unwrap();
    let password_hash: String =
        sqlx::query_scalar("select password_hash from users").fetch_one(&app.pool).await.unwrap();
    for round in 0..10 {
        let (id, _) = enrol(&app, &keys, alice).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Logins that proved the password, each opening a session as fast as its statement goes.
        let logins: Vec<_> = (0..3)
            .map(|_| {
                let (app, email, stored, stop) =
                    (app.clone(), email.clone(), password_hash.clone(), stop.clone());
                tokio::spawn(async move {
                    let device = Device { user_agent: None, ip: None };
                    let mut db = app.app.connection().await.unwrap();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let (refresh, pending) = (hash_of_new_token(), hash_of_new_token());
                        let attempt = Attempt::Login { source: None, source_limit: u32::MAX };
                        start_session(
                            &mut db,
                            alice,
                            &email,
                            attempt,
                            &stored,
                            None,
                            opening(&device, &refresh, &pending),
                        )
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut db = app.app.connection().await.unwrap();
        let confirmed =
            store::confirm_factor(&mut db, alice, id, 1_000 + round, &[], by(session), undo(&hash()))
                .await
                .unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        futures_util::future::join_all(logins).await;

        assert_eq!(confirmed, Change::Done, "round {round}");
        assert_eq!(live_sessions(&app, alice).await, 1, "round {round}: only the confirming session");
        // Back to no factor, for the next round (and under the hourly cap).
        sqlx::raw_sql("delete from mfa_factors; delete from security_undo_tokens")
            .execute(&app.pool)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_verification_racing_a_reset_keeps_no_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let (keys, alice) = (keys(), user(&app, "alice@example.com").await);
    live(&app, &keys, alice, 100, &[]).await;
    let email = Email::parse("alice@example.com").unwrap();
    let device = Device { user_agent: None, ip: None };
    let assurance = Assurance::second_factor(shared::domain::SecondFactor::Totp);
    for round in 0..20 {
        let stored: String =
            sqlx::query_scalar("select password_hash from users").fetch_one(&app.pool).await.unwrap();
        let mut db = app.app.connection().await.unwrap();
        let (unused, waiting) = (hash_of_new_token(), hash_of_new_token());
        let attempt = Attempt::Login { source: None, source_limit: u32::MAX };
        let started = start_session(
            &mut db,
            alice,
            &email,
            attempt,
            &stored,
            None,
            opening(&device, &unused, &waiting),
        )
        .await
        .unwrap();
        assert!(matches!(started, Started::SecondFactorDue { .. }));
        let link = MailToken::generate().unwrap();
        sqlx::query("delete from mail_quota").execute(&app.pool).await.unwrap();
        shared::links::store::request_mail(
            &mut db,
            email.as_str(),
            MailKind::ResetPassword,
            &link.hash(),
            u32::MAX,
            None,
        )
        .await
        .unwrap();
        let (refresh, next_pending) = (hash_of_new_token(), hash_of_new_token());
        let new_hash = format!("{stored}-{round}");

        let verify = async {
            let mut db = app.app.connection().await.unwrap();
            let session = NewSessionAt {
                id: SessionId::generate(),
                refresh: &refresh,
                ttl: std::time::Duration::from_secs(60),
            };
            store::open_session_with_token(&mut db, alice, &waiting, session, &assurance).await.unwrap()
        };
        let reset = async {
            let mut db = app.app.connection().await.unwrap();
            let (unused, _) = (hash_of_new_token(), ());
            shared::links::store::reset_password(
                &mut db,
                &link.hash(),
                alice,
                &new_hash,
                opening(&device, &unused, &next_pending),
            )
            .await
            .unwrap()
        };
        let (verified, reset) = tokio::join!(verify, reset);

        assert!(reset.is_some(), "round {round}: the reset went through");
        assert_eq!(
            live_sessions(&app, alice).await,
            0,
            "round {round}: the verification {} a session, and the reset ended every one",
            if verified.is_some() { "opened" } else { "opened no" }
        );
    }
}

fn hash_of_new_token() -> TokenHash {
    MailToken::generate().unwrap().hash()
}

//! The contract of every endpoint, and every error status, against a real Postgres.

use crate::helpers::{AUDIENCE, Endpoint, PASSWORD, TestApp, call, event, get, json_request, request_with};
use base64::Engine as _;
use serde_json::json;
use shared::app::App;
use shared::config::{Config, Keys, Needs};
use shared::domain::Aal;
use shared::handlers;
use shared::http::{MAX_BODY_BYTES, Request};
use shared::tokens::public_key_set;
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn signup_answers_201_with_tokens_and_the_user(pool: PgPool) {
    let app = TestApp::new(pool);

    let response = app.post_signup("  New.User@Example.com ", PASSWORD).await;

    assert_eq!(response.status, 201);
    let body = &response.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "new.user@example.com");
    assert!(body["user"]["id"].is_string() && body["user"]["created_at"].is_string());
    assert_eq!(response.refresh_token().len(), 43);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let claims = app.app.verify_access_token(&response.access_token()).await.unwrap();
    assert_eq!(claims.sub.to_string(), body["user"]["id"].as_str().unwrap());
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        (crate::helpers::ISSUER, crate::helpers::AUDIENCE)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn signup_stores_an_argon2id_hash_and_only_a_hash_of_the_refresh_token(pool: PgPool) {
    let app = TestApp::new(pool);

    let response = app.signed_up("alice@example.com").await;

    let stored: String =
        sqlx::query_scalar("select password_hash from users").fetch_one(&app.pool).await.unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"));
    assert!(!stored.contains(PASSWORD));
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("select token_hash from refresh_tokens").fetch_all(&app.pool).await.unwrap();
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], response.refresh_token().as_bytes());
    assert_eq!(hashes[0].len(), 32);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_stored_with_the_previous_argon2_parameters_logs_in_and_is_upgraded(pool: PgPool) {
    use argon2::PasswordHasher as _;
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    // The hash an account created before issue 12 holds: 19 MiB, 2 passes.
    let previous = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19_456, 2, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    sqlx::query("update users set password_hash = $1").bind(&previous).execute(&app.pool).await.unwrap();

    let response = app.post_login("alice@example.com", PASSWORD).await;

    assert_eq!(response.status, 200);
    let stored: String =
        sqlx::query_scalar("select password_hash from users").fetch_one(&app.pool).await.unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{stored}");
    assert_eq!(app.post_login("alice@example.com", PASSWORD).await.status, 200);
    assert_eq!(app.post_login("alice@example.com", "not the passphrase at all").await.status, 401);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_duplicate_email_is_409_whatever_its_case(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;

    let response = app.post_signup("ALICE@example.com", "another strong passphrase").await;

    assert_eq!((response.status, response.error_code()), (409, "email_taken"));
    assert_eq!(app.count("select count(*) from users").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn fields_that_break_their_rules_are_422_and_write_nothing(pool: PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        ("not-an-email", PASSWORD, "invalid_email"),
        ("a@b@example.com", PASSWORD, "invalid_email"),
        ("alice@example.com", "short", "weak_password"),
        ("alice@example.com", "alice@example.com", "weak_password"),
        ("alice@example.com", "alice", "weak_password"),
        ("alice@example.com", "Password123", "weak_password"),
    ];
    for (email, password, code) in cases {
        let response = app.post_signup(email, password).await;
        assert_eq!((response.status, response.error_code()), (422, code), "{email} / {password}");
    }
    assert_eq!(app.count("select count(*) from users").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_json_and_missing_or_mistyped_fields_are_400_on_every_body(pool: PgPool) {
    let app = TestApp::new(pool);
    for endpoint in [Endpoint::Signup, Endpoint::Login, Endpoint::Refresh, Endpoint::Logout] {
        let malformed = app.send(endpoint, json_request("{\"email\": ")).await;
        assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"), "{endpoint:?}");
        let missing = app.post_json(endpoint, &json!({})).await;
        assert_eq!((missing.status, missing.error_code()), (400, "invalid_request"), "{endpoint:?}");
        let mistyped =
            app.post_json(endpoint, &json!({"email": 1, "password": [], "refresh_token": 7})).await;
        assert_eq!((mistyped.status, mistyped.error_code()), (400, "invalid_request"), "{endpoint:?}");
        let empty = app.send(endpoint, json_request("")).await;
        assert_eq!(empty.status, 400, "{endpoint:?}");
    }
    assert_eq!(app.count("select count(*) from users").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_body_over_16_kib_is_413(pool: PgPool) {
    let app = TestApp::new(pool);
    let body = json!({ "email": "alice@example.com", "password": "x".repeat(MAX_BODY_BYTES) }).to_string();

    let response = app.send(Endpoint::Signup, json_request(&body)).await;

    assert_eq!((response.status, response.error_code()), (413, "payload_too_large"));
    assert_eq!(app.count("select count(*) from users").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_body_that_is_not_json_is_415(pool: PgPool) {
    let app = TestApp::new(pool);
    let body = json!({ "email": "alice@example.com", "password": PASSWORD }).to_string();

    let as_text = app.send(Endpoint::Signup, request_with(Some("text/plain"), &body, false)).await;
    let untyped = app.send(Endpoint::Login, request_with(None, &body, false)).await;

    assert_eq!((as_text.status, as_text.error_code()), (415, "unsupported_media_type"));
    assert_eq!((untyped.status, untyped.error_code()), (415, "unsupported_media_type"));
}

#[sqlx::test(migrations = "../migrations")]
async fn base64_encoded_bodies_are_decoded(pool: PgPool) {
    let app = TestApp::new(pool);
    let body = json!({ "email": "alice@example.com", "password": PASSWORD }).to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);

    let response = app.send(Endpoint::Signup, request_with(Some("application/json"), &encoded, true)).await;

    assert_eq!(response.status, 201, "{:?}", response.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn login_answers_200_with_a_new_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;

    let response = app.post_login("Alice@Example.com", PASSWORD).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.body["user"], signup.body["user"]);
    assert_ne!(response.refresh_token(), signup.refresh_token());
    assert_eq!(app.count("select count(*) from sessions").await, 2);
    let me = app.get_me(&response.access_token()).await;
    assert_eq!((me.status, &me.body["email"]), (200, &json!("alice@example.com")));
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unknown_email_and_a_wrong_password_get_one_identical_401(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;

    let wrong_password = app.post_login("alice@example.com", "not the password").await;
    let unknown_email = app.post_login("bob@example.com", PASSWORD).await;
    let malformed_email = app.post_login("bob", PASSWORD).await;

    assert_eq!((wrong_password.status, wrong_password.error_code()), (401, "invalid_credentials"));
    assert_eq!(wrong_password.body, unknown_email.body);
    assert_eq!(wrong_password.headers, unknown_email.headers);
    assert_eq!(wrong_password.body, malformed_email.body);
    assert_eq!(app.count("select count(*) from sessions").await, 1, "only signup's session");
}

#[sqlx::test(migrations = "../migrations")]
async fn failed_logins_are_counted_per_email_and_a_success_clears_them(pool: PgPool) {
    let app = TestApp::new(pool);
    app.signed_up("alice@example.com").await;
    app.post_login("alice@example.com", "wrong one").await;
    app.post_login("alice@example.com", "wrong two").await;
    app.post_login("nobody@example.com", "wrong").await;
    let counted =
        "select coalesce(sum(failed_count), 0)::int8 from login_attempts where email = 'alice@example.com'";
    assert_eq!(app.count(counted).await, 2);
    assert_eq!(app.count("select count(*) from login_attempts where email = 'nobody@example.com'").await, 1);

    assert_eq!(app.post_login("alice@example.com", PASSWORD).await.status, 200);

    assert_eq!(app.count(counted).await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn refresh_rotates_the_token_and_the_old_one_stops_working(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;

    let rotated = app.post_refresh(&signup.refresh_token()).await;
    let next = app.post_refresh(&rotated.refresh_token()).await;

    assert_eq!(rotated.status, 200);
    assert_eq!(rotated.body["user"], signup.body["user"]);
    assert_ne!(rotated.refresh_token(), signup.refresh_token());
    assert_eq!(next.status, 200);
    assert_ne!(next.refresh_token(), rotated.refresh_token());
    assert_eq!(app.count("select count(*) from refresh_tokens where revoked_at is null").await, 1);
    let claims = app.app.verify_access_token(&next.access_token()).await.unwrap();
    assert_eq!(claims.sub.to_string(), signup.body["user"]["id"].as_str().unwrap());
}

#[sqlx::test(migrations = "../migrations")]
async fn access_tokens_carry_how_the_session_was_proven_and_a_refresh_keeps_it(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    let login = app.post_login("alice@example.com", PASSWORD).await;
    let claims = async |token: String| app.app.verify_access_token(&token).await.unwrap();
    // As a second factor will have proven it (its endpoints set these columns).
    sqlx::query("update sessions set aal = 'aal2', amr = '{pwd,otp}' where id = $1")
        .bind(claims(login.access_token()).await.sid)
        .execute(&app.pool)
        .await
        .unwrap();

    let signup_claims = claims(signup.access_token()).await;
    let refreshed = claims(app.post_refresh(&login.refresh_token()).await.access_token()).await;
    let signup_refreshed = claims(app.post_refresh(&signup.refresh_token()).await.access_token()).await;

    assert_eq!((signup_claims.aal, signup_claims.amr), (Aal::Aal1, vec!["pwd".to_owned()]));
    assert_eq!((refreshed.aal, refreshed.amr), (Aal::Aal2, vec!["pwd".to_owned(), "otp".to_owned()]));
    assert_eq!((signup_refreshed.aal, signup_refreshed.amr), (Aal::Aal1, vec!["pwd".to_owned()]));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refresh_replayed_within_the_grace_window_keeps_the_sessions_assurance(pool: PgPool) {
    let app = TestApp::new(pool);
    let login = app.signed_up("alice@example.com").await;
    sqlx::query("update sessions set aal = 'aal2', amr = '{hwk,user}'").execute(&app.pool).await.unwrap();

    let first = app.post_refresh(&login.refresh_token()).await;
    let again = app.post_refresh(&login.refresh_token()).await;

    assert_eq!((first.status, again.status), (200, 200));
    let claims = app.app.verify_access_token(&again.access_token()).await.unwrap();
    assert_eq!((claims.aal, claims.amr), (Aal::Aal2, vec!["hwk".to_owned(), "user".to_owned()]));
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_malformed_and_expired_refresh_tokens_are_401(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    sqlx::query("update refresh_tokens set expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();

    let expired = app.post_refresh(&signup.refresh_token()).await;
    let unknown = app.post_refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    let malformed = app.post_refresh("not a token").await;

    for response in [expired, unknown, malformed] {
        assert_eq!((response.status, response.error_code()), (401, "invalid_refresh_token"));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_revokes_the_session_for_refresh_and_for_me(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    let other_session = app.post_login("alice@example.com", PASSWORD).await;

    let logout = app.post_logout(&signup.refresh_token()).await;

    assert_eq!((logout.status, &logout.body), (204, &serde_json::Value::Null));
    let refresh = app.post_refresh(&signup.refresh_token()).await;
    assert_eq!((refresh.status, refresh.error_code()), (401, "invalid_refresh_token"));
    let me = app.get_me(&signup.access_token()).await;
    assert_eq!((me.status, me.error_code()), (401, "invalid_token"));
    assert_eq!(app.get_me(&other_session.access_token()).await.status, 200, "other sessions live on");
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_is_204_for_unknown_malformed_and_already_revoked_tokens(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    assert_eq!(app.post_logout(&signup.refresh_token()).await.status, 204);

    for token in [signup.refresh_token().as_str(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "junk"] {
        assert_eq!(app.post_logout(token).await.status, 204, "{token}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn me_answers_the_user_behind_the_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;

    let me = app.get_me(&signup.access_token()).await;

    assert_eq!(me.status, 200);
    let mut expected = signup.body["user"].clone();
    expected["factors"] = serde_json::json!([]);
    expected["passkeys"] = serde_json::json!([]);
    assert_eq!(me.body, expected, "the user, and no second factor or passkey yet");
}

#[sqlx::test(migrations = "../migrations")]
async fn me_without_a_valid_bearer_token_is_401_with_www_authenticate(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;
    let mut tampered = signup.access_token();
    tampered.replace_range(tampered.len() - 4.., "AAAA");

    let missing = app.send(Endpoint::Me, get("/auth/me")).await;
    let garbage = app.get_me("not.a.jwt").await;
    let forged = app.get_me(&tampered).await;
    let basic = event("GET", "/auth/me", json!({"authorization": "Basic YWxpY2U6cHc="}), None, false);
    let wrong_scheme = app.send(Endpoint::Me, basic).await;

    assert_eq!((missing.status, missing.error_code()), (401, "missing_token"));
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(wrong_scheme.status, 401);
    for response in [garbage, forged] {
        assert_eq!((response.status, response.error_code()), (401, "invalid_token"));
        assert_eq!(response.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn health_is_200_when_the_database_answers(pool: PgPool) {
    let app = TestApp::new(pool);

    let response = app.send(Endpoint::Health, get("/health")).await;

    assert_eq!(response.status, 200);
    assert_eq!(
        (&response.body["status"], &response.body["database"]),
        (&json!("healthy"), &json!("connected"))
    );
    let timestamp = response.body["timestamp"].as_str().unwrap();
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339).unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn jwks_serves_the_public_key_that_verifies_issued_tokens(pool: PgPool) {
    let app = TestApp::new(pool);
    let signup = app.signed_up("alice@example.com").await;

    let response = app.send(Endpoint::Jwks, get("/.well-known/jwks.json")).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.header("cache-control"), Some("public, max-age=300"));
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(response.body.clone()).unwrap();
    let kid = jsonwebtoken::decode_header(signup.access_token()).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[crate::helpers::AUDIENCE]);
    jsonwebtoken::decode::<serde_json::Value>(signup.access_token(), &key, &validation)
        .expect("verifies with the JWKS");
    assert!(response.body["keys"][0].get("d").is_none(), "no private parameters");
}

/// Three sessions of alice (signup and two logins) and one of bob.
async fn sessions_of_alice_and_bob(
    app: &TestApp,
) -> (Vec<crate::helpers::Response>, crate::helpers::Response) {
    let alice = vec![
        app.signed_up("alice@example.com").await,
        app.post_login("alice@example.com", PASSWORD).await,
        app.post_login("alice@example.com", PASSWORD).await,
    ];
    (alice, app.signed_up("bob@example.com").await)
}

async fn live(app: &TestApp, session: &crate::helpers::Response) -> bool {
    app.get_me(&session.access_token()).await.status == 200
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_with_the_global_scope_ends_every_session_of_the_user(pool: PgPool) {
    let app = TestApp::new(pool);
    let (alice, bob) = sessions_of_alice_and_bob(&app).await;

    let response = app
        .post_json(Endpoint::Logout, &json!({"refresh_token": alice[1].refresh_token(), "scope": "global"}))
        .await;

    assert_eq!(response.status, 204);
    for session in &alice {
        assert!(!live(&app, session).await);
    }
    assert!(live(&app, &bob).await, "other users are untouched");
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_with_the_others_scope_keeps_only_the_current_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let (alice, bob) = sessions_of_alice_and_bob(&app).await;

    let response = app
        .post_json(Endpoint::Logout, &json!({"refresh_token": alice[1].refresh_token(), "scope": "others"}))
        .await;

    assert_eq!(response.status, 204);
    assert_eq!(
        [live(&app, &alice[0]).await, live(&app, &alice[1]).await, live(&app, &alice[2]).await],
        [false, true, false]
    );
    assert_eq!(app.post_refresh(&alice[1].refresh_token()).await.status, 200);
    assert!(live(&app, &bob).await);
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_with_the_local_scope_is_the_default(pool: PgPool) {
    let app = TestApp::new(pool);
    let (alice, _) = sessions_of_alice_and_bob(&app).await;

    let unscoped = app.post_json(Endpoint::Logout, &json!({"refresh_token": alice[0].refresh_token()})).await;

    assert_eq!(unscoped.status, 204);
    assert_eq!(
        [live(&app, &alice[0]).await, live(&app, &alice[1]).await, live(&app, &alice[2]).await],
        [false, true, true],
        "only the session of the token sent ends, as with \"scope\": \"local\""
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn wide_logout_scopes_need_a_live_token_and_a_known_scope(pool: PgPool) {
    let app = TestApp::new(pool);
    let (alice, _) = sessions_of_alice_and_bob(&app).await;
    let stale = alice[0].refresh_token();
    assert_eq!(app.post_refresh(&stale).await.status, 200, "rotated: no longer live");

    let with_stale =
        app.post_json(Endpoint::Logout, &json!({"refresh_token": stale, "scope": "global"})).await;
    let unknown_scope = app
        .post_json(
            Endpoint::Logout,
            &json!({"refresh_token": alice[1].refresh_token(), "scope": "everywhere"}),
        )
        .await;

    assert_eq!((with_stale.status, with_stale.error_code()), (401, "invalid_refresh_token"));
    assert_eq!((unknown_scope.status, unknown_scope.error_code()), (422, "invalid_scope"));
    assert!(live(&app, &alice[1]).await && live(&app, &alice[2]).await);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_openid_configuration_is_served_by_the_jwks_function(pool: PgPool) {
    let app = TestApp::new(pool);
    let response = app.send(Endpoint::Jwks, get("/.well-known/openid-configuration")).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.body["issuer"], crate::helpers::ISSUER);
    assert_eq!(response.body["jwks_uri"], format!("{}/.well-known/jwks.json", crate::helpers::ISSUER));
    assert_eq!(response.body["id_token_signing_alg_values_supported"], json!(["RS256"]));
}

#[tokio::test]
async fn a_function_that_signs_and_verifies_checks_a_callers_token_and_signs_a_new_one() {
    use secrecy::ExposeSecret as _;
    let public_keys = test_support::public_keys("k1");
    let private_key = test_support::key_pem().expose_secret().to_owned();
    let vars = [
        ("JWT_PRIVATE_KEY", private_key.as_str()),
        ("JWT_KEY_ID", "k1"),
        ("REFRESH_TOKEN_HMAC_KEY", test_support::REFRESH_TOKEN_KEY),
        ("JWT_PUBLIC_KEYS", public_keys.as_str()),
        ("JWT_ISSUER", crate::helpers::ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ];
    let lookup = |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned());
    let app = |keys| {
        let needs = Needs { database: false, keys, mail: false, mfa: false, passkeys: false, query: false };
        App::from_config(Config::from_lookup(needs, lookup).unwrap()).unwrap()
    };
    let (both, signer) = (app(Keys::SignAndVerify), app(Keys::Sign));
    // Without JWT_ISSUER, as the template deploys: the issuer is learnt from the first request.
    let derived_vars: Vec<(&str, &str)> = vars
        .iter()
        .filter(|(key, _)| *key != "JWT_ISSUER")
        .copied()
        .chain([("AWS_REGION", "eu-west-1")])
        .collect();
    let derived_lookup =
        |name: &str| derived_vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned());
    let needs = Needs {
        database: false,
        keys: Keys::SignAndVerify,
        mail: false,
        mfa: false,
        passkeys: false,
        query: false,
    };
    let derived = App::from_config(Config::from_lookup(needs, derived_lookup).unwrap()).unwrap();
    derived.learn_issuer(&crate::helpers::event("GET", "/auth/me", json!({}), None, false));

    let (user, session) = (shared::domain::UserId::generate(), shared::domain::SessionId::generate());
    let password = shared::domain::Assurance::password();
    let token = both.tokens().await.unwrap().issue(user, session, &password).unwrap();
    let derived_token = derived.tokens().await.unwrap().issue(user, session, &password).unwrap();

    assert_eq!(both.verify_access_token(&token.token).await.unwrap().sub, user.0);
    assert!(signer.verify_access_token(&token.token).await.is_err(), "a signer alone holds no key set");
    let verified = derived.verify_access_token(&derived_token.token).await;
    assert_eq!(verified.unwrap().sub, user.0, "one issuer for both halves, learnt once");
}

#[tokio::test]
async fn a_derived_issuer_is_learnt_from_the_api_of_the_first_request() {
    let public_keys = public_key_set(&[&test_support::signing_key("test-key")]).to_string();
    let vars =
        [("JWT_PUBLIC_KEYS", public_keys.as_str()), ("JWT_AUDIENCE", AUDIENCE), ("AWS_REGION", "eu-west-1")];
    let needs =
        Needs { database: false, keys: Keys::Verify, mail: false, mfa: false, passkeys: false, query: false };
    let lookup = |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned());
    let app = App::from_config(Config::from_lookup(needs, lookup).unwrap()).unwrap();

    // Through the HTTP API `testapi`'s `$default` stage, as every helper's request comes.
    let response = call(&app, handlers::jwks::handle, get("/.well-known/openid-configuration")).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["issuer"], "https://testapi.execute-api.eu-west-1.amazonaws.com");
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_bodies_get_a_4xx_error_body_and_write_nothing(pool: PgPool) {
    let app = TestApp::new(pool);
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let megabyte_password =
        json!({"email": "alice@example.com", "password": "x".repeat(1 << 20)}).to_string();
    let invalid_utf8 = base64(b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}");
    // Each case makes its request afresh: a request is sent once (it is not Clone).
    type Case<'a> = (&'a str, Box<dyn Fn() -> Request + 'a>, u16);
    let cases: Vec<Case> = vec![
        ("invalid UTF-8", Box::new(|| request_with(Some("application/json"), &invalid_utf8, true)), 400),
        ("deep nesting", Box::new(|| json_request(&deep)), 400),
        (
            "duplicate keys",
            Box::new(|| json_request(r#"{"email":"a@example.com","email":"b@example.com","password":"pw"}"#)),
            400,
        ),
        ("a 1 MB password", Box::new(|| json_request(&megabyte_password)), 413),
        ("a JSON array", Box::new(|| json_request("[]")), 400),
        ("a bare string", Box::new(|| json_request("\"alice\"")), 400),
        ("null", Box::new(|| json_request("null")), 400),
    ];

    for (name, request, status) in cases {
        for endpoint in [Endpoint::Signup, Endpoint::Login] {
            let response = app.send(endpoint, request()).await;
            assert_eq!(response.status, status, "{name} on {endpoint:?}: {}", response.body);
            assert!(!response.error_code().is_empty());
        }
    }
    assert_eq!(app.count("select count(*) from users").await, 0);
    assert_eq!(app.count("select count(*) from login_attempts").await, 0);
}

//! The issuer as the template deploys it by default: `JWT_ISSUER` empty, so each function
//! derives `https://{apiId}.execute-api.{AWS_REGION}.amazonaws.com` from the API Gateway request
//! context. The tokens the signers mint, the discovery document and me must all agree on it.

use crate::helpers::{TestApi, email, jwt_part};

#[tokio::test]
async fn without_jwt_issuer_tokens_and_discovery_name_the_apis_own_url() {
    let api = TestApi::start_with(|config| {
        config.region = "eu-central-1".to_owned();
        config.env_overrides.remove_for_all("JWT_ISSUER");
    })
    .await;
    // The emulator's API id, as API Gateway would write it in requestContext.apiId.
    let derived = "https://local.execute-api.eu-central-1.amazonaws.com";

    let signup = api.post_signup(&email()).await;
    let refreshed = api.post_refresh(&signup.refresh_token()).await;
    let discovery = api.get("/.well-known/openid-configuration").await;
    let me = api.get_me(&refreshed.access_token()).await;

    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!(jwt_part(&signup.access_token(), 1)["iss"], derived);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(jwt_part(&refreshed.access_token(), 1)["iss"], derived);
    assert_eq!(discovery.status, 200, "{}", discovery.text);
    assert_eq!(discovery.body["issuer"], derived);
    assert_eq!(discovery.body["jwks_uri"], format!("{derived}/.well-known/jwks.json"));
    assert_eq!(me.status, 200, "{}", me.text);
}

#[tokio::test]
async fn a_configured_issuer_is_used_as_it_is() {
    let api = TestApi::start().await;

    let signup = api.post_signup(&email()).await;
    let discovery = api.get("/.well-known/openid-configuration").await;

    assert_eq!(jwt_part(&signup.access_token(), 1)["iss"], crate::helpers::ISSUER);
    assert_eq!(discovery.body["issuer"], crate::helpers::ISSUER);
    assert_eq!(api.get_me(&signup.access_token()).await.status, 200);
}

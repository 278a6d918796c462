//! `AWS_IAM` authorization of an HTTP API route, as API Gateway applies it before invoking the
//! function: the request must be signed (AWS Signature Version 4, service `execute-api`) with
//! the one access key the emulator knows (`--iam-credentials`), within five minutes of now. A
//! refused request gets 403 and API Gateway's message; an accepted one names its signer in the
//! event's `requestContext.authorizer.iam`.

use std::path::Path;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::gateway::{GatewayResponse, IncomingRequest};
use crate::sigv4::{self, Authorization, Credential, SignedRequest};
use crate::template::ACCOUNT_ID;

/// The service name that requests to API Gateway are signed for.
pub const SERVICE: &str = "execute-api";
/// How far the signing time may be from the gateway's clock, either way.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// An unsigned request to an `AWS_IAM` route.
pub const MISSING_SIGNATURE: &str = "Forbidden";
/// A request signed with an access key the emulator does not know.
pub const UNKNOWN_ACCESS_KEY: &str = "The security token included in the request is invalid.";
/// A signature that is not the request's (another secret, another host, an altered body...).
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you \
                                      provided. Check your AWS Secret Access Key and signing method. Consult \
                                      the service documentation for details.";

/// `x-amz-date`'s ISO 8601 basic format.
const AMZ_DATE: &[FormatItem<'static>] = format_description!("[year][month][day]T[hour][minute][second]Z");

/// The IAM user whose access key signs requests to the `AWS_IAM` routes: the `--iam-credentials`
/// file, `{"access_key_id": ..., "secret_access_key": ..., "user_arn": ...}` (`user_arn`
/// optional).
#[derive(Debug, Clone, Deserialize)]
pub struct IamCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Default: `arn:aws:iam::<ACCOUNT_ID>:user/local-admin`.
    #[serde(default = "default_user_arn")]
    pub user_arn: String,
}

fn default_user_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/local-admin")
}

impl IamCredentials {
    /// Credentials of the default user.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretString::from(secret_access_key.into()),
            user_arn: default_user_arn(),
        }
    }

    /// Reads a credentials file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Parses credentials JSON.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let credentials: Self = serde_json::from_str(text)
            .context("expected {\"access_key_id\": ..., \"secret_access_key\": ..., \"user_arn\"?: ...}")?;
        anyhow::ensure!(!credentials.access_key_id.is_empty(), "access_key_id is empty");
        anyhow::ensure!(
            !credentials.secret_access_key.expose_secret().is_empty(),
            "secret_access_key is empty"
        );
        Ok(credentials)
    }

    /// Who signs with these credentials.
    pub fn caller(&self) -> Caller {
        // An IAM user's unique id: AIDA and 17 characters of base32, here derived from the ARN
        // so that it stays the same from run to run.
        let digest = Sha256::digest(self.user_arn.as_bytes());
        let suffix: String = digest
            .iter()
            .take(17)
            .map(|byte| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(byte % 32)]))
            .collect();
        let account_id = self.user_arn.split(':').nth(4).filter(|id| !id.is_empty()).unwrap_or(ACCOUNT_ID);
        Caller {
            access_key: self.access_key_id.clone(),
            account_id: account_id.to_owned(),
            user_arn: self.user_arn.clone(),
            user_id: format!("AIDA{suffix}"),
        }
    }
}

/// The principal that signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key: String,
    pub account_id: String,
    pub user_arn: String,
    /// The IAM user's unique id (`AIDA...`), also its `callerId`.
    pub user_id: String,
}

impl Caller {
    /// `requestContext.authorizer.iam` of payload format 2.0, as an HTTP API writes it for an
    /// IAM user.
    pub fn authorizer_iam(&self) -> Value {
        json!({
            "accessKey": self.access_key,
            "accountId": self.account_id,
            "callerId": self.user_id,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": self.user_arn,
            "userId": self.user_id,
        })
    }
}

/// Why the gateway refuses a request to an `AWS_IAM` route: its 403 answer's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The gateway's answer: 403 `{"message": ...}`.
    pub fn response(&self) -> GatewayResponse {
        GatewayResponse::error(403, &self.0)
    }
}

/// [`authorize`], for a request this emulator received on `port`: its `Host` (which the
/// signature covers) must name this server, a loopback address or `localhost` on that port, as
/// a real API's must name the API's own domain. Another host is refused before the signature is
/// read.
pub fn authorize_here(
    request: &IncomingRequest<'_>,
    credentials: Option<&IamCredentials>,
    region: &str,
    port: u16,
    now: OffsetDateTime,
) -> Result<Caller, Refusal> {
    let host = request.headers.get(http::header::HOST).and_then(|value| value.to_str().ok());
    // No userinfo (`name@host`): a gateway's host is a bare name.
    let bare = host.filter(|host| !host.contains('@'));
    let ours = bare.and_then(|host| host.parse::<http::uri::Authority>().ok()).is_some_and(|authority| {
        let name = authority.host().trim_start_matches('[').trim_end_matches(']');
        let local = name.eq_ignore_ascii_case("localhost")
            || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        local && authority.port_u16() == Some(port)
    });
    if !ours {
        return Err(Refusal::new(MISSING_SIGNATURE));
    }
    authorize(request, credentials, region, now)
}

/// Checks the signature of a request to an `AWS_IAM` route as API Gateway does, against the
/// credentials the emulator knows (none: every signed request has an unknown key). `region` is
/// the API's region, which the credential scope must name.
pub fn authorize(
    request: &IncomingRequest<'_>,
    credentials: Option<&IamCredentials>,
    region: &str,
    now: OffsetDateTime,
) -> Result<Caller, Refusal> {
    let header =
        |name: &str| request.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(authorization) = header("authorization").filter(|value| !value.trim().is_empty()) else {
        return Err(Refusal::new(MISSING_SIGNATURE));
    };
    let authorization = Authorization::parse(authorization.trim()).map_err(|missing| {
        let missing = missing.iter().map(|name| format!("Authorization header requires '{name}' parameter."));
        Refusal::new(missing.collect::<Vec<_>>().join(" "))
    })?;
    let Some(amz_date) = header("x-amz-date") else {
        return Err(Refusal::new(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let signed_at = PrimitiveDateTime::parse(&amz_date, AMZ_DATE)
        .map_err(|_| {
            Refusal::new(format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        })?
        .assume_utc();
    let credential = Credential::parse(authorization.credential).ok_or_else(|| {
        Refusal::new(format!(
            "Credential should be <access key>/<date>/<region>/{SERVICE}/{}, not '{}'.",
            sigv4::TERMINATOR,
            authorization.credential
        ))
    })?;
    check_scope(&credential, &amz_date, region)?;
    let signed: Vec<String> = authorization.signed_header_names().collect();
    if !signed.iter().any(|name| name == "host") {
        return Err(Refusal::new(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let unsigned: Vec<&str> = request
        .headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && !signed.iter().any(|s| s == name))
        .collect();
    if !unsigned.is_empty() {
        return Err(Refusal::new(format!(
            "There were headers present in the request which were not signed: {}",
            unsigned.join(", ")
        )));
    }
    check_clock(signed_at, now)?;
    let Some(known) = credentials.filter(|known| known.access_key_id == credential.access_key) else {
        return Err(Refusal::new(UNKNOWN_ACCESS_KEY));
    };
    // A payload hash the signer declares must be the body's: the signature then covers the body.
    let payload_hash = sigv4::sha256_hex(request.body);
    if header("x-amz-content-sha256").is_some_and(|declared| !declared.eq_ignore_ascii_case(&payload_hash)) {
        return Err(Refusal::new(SIGNATURE_MISMATCH));
    }
    let signed_headers = signed.join(";");
    let canonical = sigv4::canonical_request(&SignedRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: request.headers,
        signed_headers: &signed_headers,
        payload_hash: &payload_hash,
    });
    let to_sign = sigv4::string_to_sign(&amz_date, &credential.scope(), &canonical);
    let key = sigv4::signing_key(
        known.secret_access_key.expose_secret(),
        credential.date,
        credential.region,
        SERVICE,
    );
    if !sigv4::verify(&key, &to_sign, authorization.signature) {
        return Err(Refusal::new(SIGNATURE_MISMATCH));
    }
    Ok(known.caller())
}

/// The credential scope must be the signing day, this API's region and `execute-api`.
fn check_scope(credential: &Credential<'_>, amz_date: &str, region: &str) -> Result<(), Refusal> {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    if credential.date != day {
        return Err(Refusal::new(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
             '{}' != '{day}', from '{amz_date}'.",
            credential.date
        )));
    }
    if credential.region != region {
        return Err(Refusal::new(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            credential.region
        )));
    }
    if credential.service != SERVICE {
        return Err(Refusal::new(format!("Credential should be scoped to correct service: '{SERVICE}'.")));
    }
    if credential.terminator != sigv4::TERMINATOR {
        return Err(Refusal::new(format!(
            "Credential should be scoped with a valid terminator: '{}', not '{}'.",
            sigv4::TERMINATOR,
            credential.terminator
        )));
    }
    Ok(())
}

/// The signing time must be within [`CLOCK_SKEW`] of `now`.
fn check_clock(signed_at: OffsetDateTime, now: OffsetDateTime) -> Result<(), Refusal> {
    let format = |at: OffsetDateTime| at.format(AMZ_DATE).unwrap_or_default();
    if signed_at < now - CLOCK_SKEW {
        return Err(Refusal::new(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            format(signed_at),
            format(now - CLOCK_SKEW),
            format(now)
        )));
    }
    if signed_at > now + CLOCK_SKEW {
        return Err(Refusal::new(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            format(signed_at),
            format(now + CLOCK_SKEW),
            format(now)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;

    const ACCESS_KEY: &str = "AKIAEMULATORTEST0001";
    const SECRET: &str = "emulator/secret+key/for/tests/0123456789";

    /// Signed by botocore's `SigV4Auth` (execute-api, us-east-1) at 2025-11-27T05:22:00Z, for
    /// `GET http://127.0.0.1:3000/admin/users?email_prefix=ali&b=%2F&a=x%20y&a=~`.
    const BOTOCORE_GET: &str = "AWS4-HMAC-SHA256 Credential=AKIAEMULATORTEST0001/20251127/us-east-1/execute-api/\
        aws4_request, SignedHeaders=host;x-amz-date, \
        Signature=1b9258c5e80368b698f6550937a054ca48ea04d56a0efc3fc4a8ba3a34f3089a";
    /// Signed by botocore at the same time, with a session token, for a POST of
    /// `{"reason": "spam"}` to `http://localhost:3000/admin/users/caf%C3%A9%20x~y/./disable/../disable`.
    const BOTOCORE_POST: &str = "AWS4-HMAC-SHA256 Credential=AKIAEMULATORTEST0001/20251127/us-east-1/execute-api/\
        aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-custom, \
        Signature=767910c66683214567a836110aec6a9a45da826f55eb9ab83d1da18968441ce7";

    /// Signed by botocore at the same time, for a PUT of `{"reason": "spam"}` to
    /// `http://localhost:3000/admin/users/1` that declares its payload hash.
    const BOTOCORE_PUT: &str = "AWS4-HMAC-SHA256 Credential=AKIAEMULATORTEST0001/20251127/us-east-1/execute-api/\
        aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
        Signature=62aa67cf40deede5e8bd47d0561ae71441a732cb4091e1baf4e2a856ef67251d";

    fn signed_at() -> OffsetDateTime {
        PrimitiveDateTime::parse("20251127T052200Z", AMZ_DATE).unwrap().assume_utc()
    }

    fn credentials() -> IamCredentials {
        IamCredentials::new(ACCESS_KEY, SECRET)
    }

    struct Request {
        method: &'static str,
        path: &'static str,
        query: Option<&'static str>,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Request {
        fn get() -> Self {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
            headers.insert("x-amz-date", HeaderValue::from_static("20251127T052200Z"));
            headers.insert("authorization", HeaderValue::from_static(BOTOCORE_GET));
            Self {
                method: "GET",
                path: "/admin/users",
                query: Some("email_prefix=ali&b=%2F&a=x%20y&a=~"),
                headers,
                body: Vec::new(),
            }
        }

        fn post() -> Self {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("localhost:3000"));
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            headers.insert("x-custom", HeaderValue::from_static("a   b"));
            headers.insert("x-amz-date", HeaderValue::from_static("20251127T052200Z"));
            headers.insert("x-amz-security-token", HeaderValue::from_static("session-token-abc"));
            headers.insert("authorization", HeaderValue::from_static(BOTOCORE_POST));
            Self {
                method: "POST",
                path: "/admin/users/caf%C3%A9%20x~y/./disable/../disable",
                query: None,
                headers,
                body: br#"{"reason": "spam"}"#.to_vec(),
            }
        }

        fn put() -> Self {
            let body = br#"{"reason": "spam"}"#.to_vec();
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("localhost:3000"));
            headers.insert("x-amz-content-sha256", HeaderValue::from_str(&sigv4::sha256_hex(&body)).unwrap());
            headers.insert("x-amz-date", HeaderValue::from_static("20251127T052200Z"));
            headers.insert("authorization", HeaderValue::from_static(BOTOCORE_PUT));
            Self { method: "PUT", path: "/admin/users/1", query: None, headers, body }
        }

        fn header(mut self, name: &'static str, value: &str) -> Self {
            self.headers.insert(name, HeaderValue::from_str(value).unwrap());
            self
        }

        fn authorize_with(
            &self,
            credentials: Option<&IamCredentials>,
            now: OffsetDateTime,
        ) -> Result<Caller, Refusal> {
            let incoming = IncomingRequest {
                method: self.method,
                path: self.path,
                query: self.query,
                headers: &self.headers,
                body: &self.body,
                source_ip: "127.0.0.1".into(),
                protocol: "HTTP/1.1",
            };
            authorize(&incoming, credentials, "us-east-1", now)
        }

        fn authorize(&self) -> Result<Caller, Refusal> {
            self.authorize_with(Some(&credentials()), signed_at() + Duration::seconds(30))
        }

        fn refusal(&self) -> String {
            self.authorize().expect_err("the request is refused").0
        }
    }

    #[test]
    fn requests_botocore_signed_are_accepted_as_the_credentials_user() {
        let caller = Request::get().authorize().expect("botocore's GET verifies");
        assert_eq!(caller.access_key, ACCESS_KEY);
        assert_eq!(caller.user_arn, "arn:aws:iam::123456789012:user/local-admin");
        assert_eq!(caller.account_id, ACCOUNT_ID);

        let post = Request::post().authorize();
        assert_eq!(post, Ok(caller), "a body, a session token, dot segments and an encoded path verify");
    }

    #[test]
    fn an_unsigned_request_is_forbidden_and_an_incomplete_one_says_what_it_lacks() {
        let mut unsigned = Request::get();
        unsigned.headers.remove("authorization");
        assert_eq!(unsigned.refusal(), "Forbidden");

        let incomplete = Request::get().header("authorization", "AWS4-HMAC-SHA256 Credential=x/y/z/w/v");
        assert_eq!(
            incomplete.refusal(),
            "Authorization header requires 'Signature' parameter. \
             Authorization header requires 'SignedHeaders' parameter."
        );
        let mut undated = Request::get();
        undated.headers.remove("x-amz-date");
        assert_eq!(
            undated.refusal(),
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        );
    }

    #[test]
    fn an_unknown_access_key_has_an_invalid_security_token() {
        let other =
            Request::get().header("authorization", &BOTOCORE_GET.replace(ACCESS_KEY, "AKIAOTHERKEY00000001"));
        assert_eq!(other.refusal(), UNKNOWN_ACCESS_KEY);

        let request = Request::get();
        let without_credentials = request.authorize_with(None, signed_at());
        assert_eq!(without_credentials, Err(Refusal(UNKNOWN_ACCESS_KEY.to_owned())));
    }

    #[test]
    fn another_secret_host_method_query_header_or_body_does_not_match_the_signature() {
        let other_secret = IamCredentials::new(ACCESS_KEY, "another secret");
        let refused = Request::get().authorize_with(Some(&other_secret), signed_at());
        assert_eq!(refused, Err(Refusal(SIGNATURE_MISMATCH.to_owned())));

        let mut tampered_body = Request::post();
        tampered_body.body = br#"{"reason": "spam!"}"#.to_vec();
        let mut tampered_declared_body = Request::put();
        tampered_declared_body.body = br#"{"reason": "spam!"}"#.to_vec();
        let mut other_query = Request::get();
        other_query.query = Some("email_prefix=bob&b=%2F&a=x%20y&a=~");
        let mut other_method = Request::get();
        other_method.method = "DELETE";
        for (what, request) in [
            ("host", Request::get().header("host", "admin.example.com")),
            ("body", tampered_body),
            ("body than the declared payload hash", tampered_declared_body),
            (
                "declared payload hash",
                Request::put().header("x-amz-content-sha256", &sigv4::sha256_hex(b"x")),
            ),
            ("query", other_query),
            ("method", other_method),
            ("header", Request::post().header("x-custom", "a c")),
        ] {
            assert_eq!(request.refusal(), SIGNATURE_MISMATCH, "another {what}");
        }
    }

    #[test]
    fn a_declared_payload_hash_is_the_body_s_and_must_be_signed() {
        assert!(Request::put().authorize().is_ok(), "botocore's PUT with x-amz-content-sha256 verifies");

        let undeclared =
            Request::post().header("x-amz-content-sha256", &sigv4::sha256_hex(br#"{"reason": "spam"}"#));
        assert_eq!(
            undeclared.refusal(),
            "There were headers present in the request which were not signed: x-amz-content-sha256"
        );
    }

    #[test]
    fn a_signature_more_than_five_minutes_old_or_ahead_has_expired_or_is_not_yet_current() {
        let request = Request::get();
        let later = request.authorize_with(Some(&credentials()), signed_at() + Duration::minutes(10));
        let earlier = request.authorize_with(Some(&credentials()), signed_at() - Duration::minutes(10));
        let at_the_edge = request.authorize_with(Some(&credentials()), signed_at() + Duration::minutes(5));

        assert_eq!(
            later.unwrap_err().0,
            "Signature expired: 20251127T052200Z is now earlier than 20251127T052700Z \
             (20251127T053200Z - 5 min.)"
        );
        assert_eq!(
            earlier.unwrap_err().0,
            "Signature not yet current: 20251127T052200Z is still later than 20251127T051700Z \
             (20251127T051200Z + 5 min.)"
        );
        assert!(at_the_edge.is_ok(), "five minutes is still within the skew");
    }

    #[test]
    fn the_scope_must_be_the_signing_day_this_region_and_execute_api() {
        let scoped = |from: &str, to: &str| {
            Request::get().header("authorization", &BOTOCORE_GET.replace(from, to)).refusal()
        };
        assert_eq!(
            scoped("/us-east-1/", "/eu-west-1/"),
            "Credential should be scoped to a valid region, not 'eu-west-1'."
        );
        assert_eq!(
            scoped("/execute-api/", "/lambda/"),
            "Credential should be scoped to correct service: 'execute-api'."
        );
        assert_eq!(
            scoped("/20251127/", "/20251126/"),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
             '20251126' != '20251127', from '20251127T052200Z'."
        );
        assert!(scoped("/aws4_request", "").starts_with("Credential should be <access key>/"));
        assert_eq!(
            Request::get().header("x-amz-date", "2025-11-27T05:22:00Z").refusal(),
            "Date must be in ISO-8601 'basic format'. Got '2025-11-27T05:22:00Z'. See http://en.wikipedia.org/wiki/ISO_8601"
        );
    }

    #[test]
    fn host_and_every_x_amz_header_must_be_signed() {
        let without_host = BOTOCORE_GET.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
        assert_eq!(
            Request::get().header("authorization", &without_host).refusal(),
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        );
        assert_eq!(
            Request::get().header("x-amz-security-token", "token").refusal(),
            "There were headers present in the request which were not signed: x-amz-security-token"
        );
    }

    #[test]
    fn the_credentials_file_names_the_user_and_hides_the_secret() {
        let default =
            IamCredentials::parse(r#"{"access_key_id": "AKIA1", "secret_access_key": "s3cr3t"}"#).unwrap();
        assert_eq!(default.user_arn, "arn:aws:iam::123456789012:user/local-admin");
        assert!(!format!("{default:?}").contains("s3cr3t"), "{default:?}");

        let named = IamCredentials::parse(
            r#"{"access_key_id": "AKIA1", "secret_access_key": "s", "user_arn": "arn:aws:iam::210987654321:user/ops/alice"}"#,
        )
        .unwrap();
        let caller = named.caller();
        assert_eq!(caller.account_id, "210987654321");
        assert!(caller.user_id.starts_with("AIDA") && caller.user_id.len() == 21, "{}", caller.user_id);
        assert_eq!(caller.user_id, named.caller().user_id, "the same user has the same id");
        assert_ne!(caller.user_id, default.caller().user_id);

        for text in [r#"{"access_key_id": "AKIA1"}"#, r#"{"access_key_id": "", "secret_access_key": "s"}"#] {
            assert!(IamCredentials::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn the_caller_is_described_as_an_http_api_describes_an_iam_user() {
        let iam = credentials().caller().authorizer_iam();
        let keys: Vec<&str> = iam.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["accessKey", "accountId", "callerId", "cognitoIdentity", "principalOrgId", "userArn", "userId"]
        );
        assert_eq!(iam["callerId"], iam["userId"]);
        assert!(iam["cognitoIdentity"].is_null() && iam["principalOrgId"].is_null());
    }
}

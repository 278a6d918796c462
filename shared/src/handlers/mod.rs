//! One module per endpoint. Each exposes `NEEDS` (what the function reads from its environment)
//! and `handle`, an `async fn(&App, lambda_http::Request) -> Reply` that parses the request,
//! calls a use-case and answers. The runtime wiring (`runtime::handle`) has let a derived issuer
//! learn the API from the request before; a handler's `Err` is an
//! [`ApiError`](crate::error::ApiError) that it answers (`runtime::answer`) with its status and
//! code, so no error reaches the front door as a bare 502.

/// Declares each endpoint's module, lists it in [`FUNCTIONS`] and boxes its handler in
/// [`boxed`]: one line per endpoint, its binary's name (template.yaml's `CodeUri` folder,
/// `functions/src/bin/<binary>.rs`) and its module. `http` endpoints answer a front door's
/// requests (`handle(&App, Request) -> Reply`); `tasks` are invoked directly
/// (`handle(&App, LambdaEvent<Value>) -> Result<Value, Diagnostic>`).
macro_rules! endpoints {
    (
        http: { $($binary:literal => $module:ident),* $(,)? }
        tasks: { $($task_binary:literal => $task:ident),* $(,)? }
    ) => {
        $(pub mod $module;)*
        $(pub mod $task;)*

        /// Every endpoint: (binary, module, what its function reads from its environment). The
        /// one list of the code's functions; tests/e2e's `house` holds template.yaml to it, so
        /// that each function is given exactly the secrets and settings its code needs.
        pub const FUNCTIONS: &[(&str, &str, Needs)] = &[
            $(($binary, stringify!($module), $module::NEEDS),)*
            $(($task_binary, stringify!($task), $task::NEEDS),)*
        ];

        /// Each endpoint's handler as the runtime takes it (a
        /// [`Handler`](crate::runtime::Handler) or a [`Task`](crate::runtime::Task)), made here
        /// once: a function's binary holds its `main` and nothing else to compile.
        pub mod boxed {
            use futures_util::future::BoxFuture;
            use lambda_runtime::{Diagnostic, LambdaEvent};
            use serde_json::Value;

            use crate::app::App;
            use crate::http::{Reply, Request};

            $(
                #[doc = concat!("`", stringify!($module), "::handle`, its future boxed.")]
                pub fn $module(app: &'static App, request: Request) -> BoxFuture<'static, Reply> {
                    Box::pin(super::$module::handle(app, request))
                }
            )*
            $(
                #[doc = concat!("`", stringify!($task), "::handle`, its future boxed.")]
                pub fn $task(app: &'static App, event: LambdaEvent<Value>) -> BoxFuture<'static, Result<Value, Diagnostic>> {
                    Box::pin(super::$task::handle(app, event))
                }
            )*
        }
    };
}

endpoints! {
    http: {
        "admin-delete-user" => admin_delete_user,
        "admin-disable" => admin_disable,
        "admin-enable" => admin_enable,
        "admin-revoke-sessions" => admin_revoke_sessions,
        "admin-send-reset" => admin_send_reset,
        "admin-user" => admin_user,
        "admin-users" => admin_users,
        "change-password" => change_password,
        "delete-account" => delete_account,
        "forgot-password" => forgot_password,
        "health" => health,
        "jwks" => jwks,
        "login" => login,
        "logout" => logout,
        "me" => me,
        "mfa-confirm" => mfa_confirm,
        "mfa-enroll" => mfa_enroll,
        "mfa-remove" => mfa_remove,
        "mfa-verify" => mfa_verify,
        "passkey-login-begin" => passkey_login_begin,
        "passkey-login-finish" => passkey_login_finish,
        "passkey-register-begin" => passkey_register_begin,
        "passkey-register-finish" => passkey_register_finish,
        "passkey-remove" => passkey_remove,
        "passkeys" => passkeys,
        "reauthenticate" => reauthenticate,
        "mfa-recovery-codes" => mfa_recovery_codes,
        "refresh" => refresh,
        "resend-verification" => resend_verification,
        "reset-password" => reset_password,
        "revoke-session" => revoke_session,
        "me-security-events" => me_security_events,
        "sessions" => sessions,
        "signup" => signup,
        "undo-change" => undo_change,
        "verify-email" => verify_email,
    }
    tasks: {
        "events-out" => events_out,
        "migrate" => migrate,
    }
}

use lambda_http::RequestExt as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::App;
use crate::config::Needs;
use crate::domain::FactorId;
use crate::domain::User;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Request, Response};
use crate::second_factor::Presented;
use crate::sessions::{Caller, Issued, SignIn};

/// `{"email","password"}`, the body of signup and login.
#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// `{"refresh_token"}`, the body of refresh and logout.
#[derive(Deserialize)]
struct RefreshTokenBody {
    refresh_token: String,
}

/// The caller of an endpoint that takes a bearer access token: 401 `missing_token` without
/// one, 401 `invalid_token` for a bad token or an ended session.
async fn caller(app: &App, request: &Request) -> Result<Caller, ApiError> {
    let token = request.bearer_token().ok_or(ApiError::MissingToken)?;
    crate::sessions::authenticate(app, token, request.device()).await
}

/// The token response of signup, login, refresh and password reset.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    user: &'a User,
}

fn token_response(status: u16, issued: &Issued) -> Response {
    http::json(
        status,
        &TokenResponse {
            access_token: &issued.access.token,
            token_type: "Bearer",
            expires_in: issued.access.expires_in,
            refresh_token: issued.refresh.expose(),
            user: &issued.user,
        },
    )
}

/// The answer of a sign-in (login, a password reset): the token response of a new session, or,
/// for a user with a live second factor, `{"mfa_required": true, "mfa_token", "factors"}` and no
/// token (`POST /auth/mfa/verify` finishes it).
fn sign_in_response(sign_in: &SignIn) -> Response {
    match sign_in {
        SignIn::Session(issued) => token_response(200, issued),
        SignIn::SecondFactorDue { token, factor } => http::json(
            200,
            &SecondFactorDue {
                mfa_required: true,
                mfa_token: token.expose(),
                factors: [FactorRef { id: *factor, kind: "totp" }],
            },
        ),
    }
}

#[derive(Serialize)]
struct SecondFactorDue<'a> {
    mfa_required: bool,
    mfa_token: &'a str,
    factors: [FactorRef; 1],
}

#[derive(Serialize)]
struct FactorRef {
    id: FactorId,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `{"code"}` or `{"recovery_code"}`: a second factor in a body.
#[derive(Deserialize)]
struct SecondFactorBody {
    code: Option<String>,
    recovery_code: Option<String>,
}

impl SecondFactorBody {
    fn presented(self) -> Result<Presented, ApiError> {
        Presented::from_fields(self.code, self.recovery_code)
    }
}

/// An access token alone (a step-up, a confirmation: the refresh token is unchanged).
#[derive(Serialize)]
struct AccessTokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

impl<'a> AccessTokenResponse<'a> {
    fn of(access: &'a crate::tokens::AccessToken) -> Self {
        Self { access_token: &access.token, token_type: "Bearer", expires_in: access.expires_in }
    }
}

/// `{"challenge_id","publicKey"}`: a passkey ceremony begun, its options as the browser's
/// `PublicKeyCredential.parseCreationOptionsFromJSON` (or `...RequestOptions...`) reads them.
fn ceremony_response(begun: &crate::passkeys::Begun) -> Response {
    #[derive(Serialize)]
    struct Ceremony<'a> {
        challenge_id: &'a str,
        #[serde(rename = "publicKey")]
        public_key: &'a serde_json::Value,
    }
    http::json(200, &Ceremony { challenge_id: &begun.challenge, public_key: &begun.options })
}

/// The IAM principal (its ARN) the gateway verified for an admin route, whose `AWS_IAM`
/// authorization signs every request: 403 `iam_required` for a request that came another way
/// (a route deployed without it), which this API never serves.
fn operator_principal(request: &Request) -> Result<String, ApiError> {
    use lambda_http::request::RequestContext;
    let principal = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            context.authorizer.as_ref().and_then(|authorizer| authorizer.iam.as_ref()?.user_arn.clone())
        }
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.user_arn.clone(),
        _ => None,
    };
    principal.filter(|arn| !arn.is_empty()).ok_or(ApiError::IamRequired)
}

/// Runs an admin action on the route's `{id}` as the signing principal: 204, 404
/// `user_not_found`.
async fn admin_action(app: &App, request: &Request, action: crate::admin::Action) -> crate::http::Reply {
    let principal = operator_principal(request)?;
    let id = path_id(request).map(crate::domain::UserId).ok_or(ApiError::UserNotFound)?;
    let device = request.device();
    let by = crate::admin::store::Operator { principal: &principal, device: &device };
    crate::admin::act(app, id, action, by).await?;
    Ok(http::empty(204))
}

/// The `{id}` of a route: the front door's path parameter (API Gateway), else the path's last
/// segment (a function URL or a load balancer, which route nothing).
fn path_id(request: &Request) -> Option<Uuid> {
    let parameters = request.path_parameters_ref();
    let raw = match parameters.and_then(|parameters| parameters.first("id")) {
        Some(id) => id.to_owned(),
        None => request.uri().path().trim_end_matches('/').rsplit('/').next()?.to_owned(),
    };
    Uuid::parse_str(&raw).ok()
}

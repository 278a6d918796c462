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
        "change-password" => change_password,
        "delete-account" => delete_account,
        "forgot-password" => forgot_password,
        "health" => health,
        "jwks" => jwks,
        "login" => login,
        "logout" => logout,
        "me" => me,
        "refresh" => refresh,
        "resend-verification" => resend_verification,
        "reset-password" => reset_password,
        "revoke-session" => revoke_session,
        "sessions" => sessions,
        "signup" => signup,
        "verify-email" => verify_email,
    }
    tasks: {
        "migrate" => migrate,
    }
}

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::Needs;
use crate::domain::User;
use crate::error::ApiError;
use crate::http::{self, ApiRequest as _, Request, Response};
use crate::sessions::{Caller, Issued};

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
    crate::sessions::authenticate(app, token).await
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

//! The API's one error type: its status and its stable code. It depends on nothing else in the
//! crate; the response it becomes is written in `http` ([`ApiError::into_response`]).

/// Everything a handler can answer with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The JSON is well formed but a field is missing or has the wrong type.
    #[error("{0}")]
    InvalidRequest(String),
    /// A field is present but breaks its rule; `code` names the rule.
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    /// Unknown email or wrong password: one answer for both.
    #[error("the email or password is incorrect")]
    InvalidCredentials,
    /// No bearer token was presented.
    #[error("an access token is required")]
    MissingToken,
    /// A bearer token that is malformed, expired, wrongly signed or whose session is revoked.
    #[error("the access token is invalid or has expired")]
    InvalidToken,
    /// A refresh token that is unknown, expired, already used or revoked.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    /// A refresh token that was already rotated was presented again: its session is revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// Too many failed logins for this email; try again after `retry_after` seconds.
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    TooManyAttempts { retry_after: u64 },
    /// A link token from a mail (verification, password reset) that is unknown, expired or
    /// already used: one answer for all three.
    #[error("the link is invalid, expired or already used")]
    InvalidLinkToken,
    /// The password presented to confirm a change (password change, account deletion) is not
    /// the account's. A 403, not a 401: the access token itself is fine.
    #[error("the password is incorrect")]
    InvalidPassword,
    /// The API sits behind CloudFront (`ORIGIN_VERIFY_SECRET`) and this request came another
    /// way: without the distribution's origin secret.
    #[error("requests must come through the API's CloudFront distribution")]
    OriginRequired,
    /// A sensitive action (a password change, a factor enrolled or removed, ...) and the
    /// session's last proof is not recent enough, or not of a second factor while the user has
    /// one: `required` names what `POST /auth/reauthenticate` must prove first.
    #[error("this action needs a fresh proof that it is you: {required}")]
    StepUpRequired { required: StepUp },
    /// An `mfa_token` that is unknown, expired, used, voided or out of tries.
    #[error("the MFA token is invalid, expired or already used")]
    InvalidMfaToken,
    /// A second factor's code (or recovery code) that is wrong or already used, at sign-in: 401.
    #[error("the code is incorrect or was already used")]
    InvalidMfaCode,
    /// The same, from a signed-in caller: a 403, the access token itself is fine.
    #[error("the code is incorrect or was already used")]
    WrongMfaCode,
    /// The user has a live TOTP factor already: one per user (remove it to enrol another).
    #[error("a TOTP factor is already enabled; remove it before enrolling another")]
    MfaAlreadyEnabled,
    /// No factor of the caller's has this id (or the caller has none).
    #[error("no such factor")]
    FactorNotFound,
    /// No passkey of the caller's has this id (another user's passkeys are unknown alike).
    #[error("no such passkey")]
    PasskeyNotFound,
    /// A passkey ceremony's `challenge_id` that is unknown, expired, used, voided, or not of this
    /// session: begin again.
    #[error("the challenge is invalid, expired or already used; begin again")]
    InvalidChallenge,
    /// The authenticator's answer to a registration failed its checks (origin, challenge, user
    /// verification, ...).
    #[error("the credential could not be verified")]
    InvalidPasskeyCredential,
    /// This authenticator's credential is registered already (to this account or another).
    #[error("this passkey is already registered")]
    PasskeyAlreadyRegistered,
    /// The account holds as many passkeys as it may.
    #[error("this account has as many passkeys as it may have; remove one first")]
    TooManyPasskeys,
    /// A passkey re-authentication that failed (not one of the caller's passkeys, or its
    /// assertion did not verify): a 403, the access token itself is fine.
    #[error("the passkey could not be verified")]
    WrongPasskey,
    /// A page's `cursor` that this API did not hand out.
    #[error("the cursor is invalid; start again without one")]
    InvalidCursor,
    /// No user has this id (the admin API).
    #[error("no such user")]
    UserNotFound,
    /// An admin route reached without the gateway's IAM authorization.
    #[error("this route is served only with IAM authorization")]
    IamRequired,
    /// The account was disabled by an operator: said only after the right password.
    #[error("this account is disabled")]
    AccountDisabled,
    /// No session of the caller's has this id (another user's sessions are unknown alike).
    #[error("no such session")]
    SessionNotFound,
    /// The email belongs to an existing account.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The body is larger than the API accepts.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// A dependency (the database, a secret) cannot be reached; the client may retry.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure; the client sees a generic message.
    #[error("an unexpected error occurred")]
    Unexpected(#[from] anyhow::Error),
}

/// What a sensitive action asks to be proven again (`step_up_required`'s `required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepUp {
    /// A sign-in or re-authentication within the last five minutes.
    RecentAuthentication,
    /// The same, with the user's second factor.
    Aal2,
}

impl std::fmt::Display for StepUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RecentAuthentication => "recent_authentication",
            Self::Aal2 => "aal2",
        })
    }
}

impl ApiError {
    /// A 422 for a field that breaks its rule.
    pub fn validation(code: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { code, message: message.into() }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedJson(_)
            | Self::InvalidRequest(_)
            | Self::InvalidLinkToken
            | Self::InvalidChallenge
            | Self::InvalidCursor
            | Self::InvalidPasskeyCredential => 400,
            Self::InvalidCredentials
            | Self::MissingToken
            | Self::InvalidToken
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused => 401,
            Self::InvalidMfaToken | Self::InvalidMfaCode => 401,
            Self::InvalidPassword
            | Self::OriginRequired
            | Self::StepUpRequired { .. }
            | Self::WrongMfaCode
            | Self::AccountDisabled
            | Self::IamRequired
            | Self::WrongPasskey => 403,
            Self::SessionNotFound | Self::FactorNotFound | Self::PasskeyNotFound | Self::UserNotFound => 404,
            Self::EmailTaken
            | Self::MfaAlreadyEnabled
            | Self::PasskeyAlreadyRegistered
            | Self::TooManyPasskeys => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyAttempts { .. } => 429,
            Self::Validation { .. } => 422,
            Self::Unexpected(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// The stable, snake_case code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Validation { code, .. } => code,
            Self::InvalidCredentials => "invalid_credentials",
            Self::MissingToken => "missing_token",
            // The same code as a bad access token: a token the client holds is no good.
            Self::InvalidToken | Self::InvalidLinkToken => "invalid_token",
            Self::InvalidPassword => "invalid_password",
            Self::OriginRequired => "origin_required",
            Self::SessionNotFound => "session_not_found",
            Self::InvalidCursor => "invalid_cursor",
            Self::UserNotFound => "user_not_found",
            Self::AccountDisabled => "account_disabled",
            Self::IamRequired => "iam_required",
            Self::StepUpRequired { .. } => "step_up_required",
            Self::InvalidMfaToken => "invalid_mfa_token",
            Self::InvalidMfaCode | Self::WrongMfaCode => "invalid_mfa_code",
            Self::MfaAlreadyEnabled => "mfa_already_enabled",
            Self::FactorNotFound => "factor_not_found",
            Self::PasskeyNotFound => "passkey_not_found",
            Self::InvalidChallenge => "invalid_challenge",
            Self::InvalidPasskeyCredential => "invalid_credential",
            Self::PasskeyAlreadyRegistered => "passkey_already_registered",
            Self::TooManyPasskeys => "too_many_passkeys",
            Self::WrongPasskey => "invalid_passkey",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::EmailTaken => "email_taken",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable(_) => "service_unavailable",
            Self::Unexpected(_) => "internal_error",
        }
    }
}

impl ApiError {
    /// Names the step that failed in a server-side failure's cause chain (what the log line of a
    /// 500 or a 503 shows); a client's error is left as it is.
    pub fn context(self, step: &'static str) -> Self {
        match self {
            Self::Unexpected(cause) => Self::Unexpected(cause.context(step)),
            Self::Unavailable(cause) => Self::Unavailable(cause.context(step)),
            client => client,
        }
    }
}

/// `.context(step)` on any result whose error becomes an [`ApiError`]: a database error keeps
/// its classification (a lost connection is still a 503), with the step named in its cause.
pub trait Context<T> {
    fn context(self, step: &'static str) -> Result<T, ApiError>;
}

impl<T, E: Into<ApiError>> Context<T> for Result<T, E> {
    fn context(self, step: &'static str) -> Result<T, ApiError> {
        self.map_err(|error| error.into().context(step))
    }
}

impl From<sqlx::Error> for ApiError {
    /// Connection-level failures, and a transaction Postgres rolled back to undo a deadlock or a
    /// serialization failure (class 40: the request may simply be sent again), are answered 503
    /// (retry); everything else is a bug (500).
    fn from(error: sqlx::Error) -> Self {
        let rolled_back = matches!(&error, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("40")));
        if is_connectivity(&error) || rolled_back {
            Self::Unavailable(error.into())
        } else {
            Self::Unexpected(error.into())
        }
    }
}

/// Whether a database error means "cannot reach or use the server" rather than "bad query".
pub fn is_connectivity(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // 08: connection exception, 57P: operator intervention (shutdown, terminated backend),
        // 53: insufficient resources (too many connections), 28: invalid authorization.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| ["08", "57P", "53", "28"].iter().any(|class| code.starts_with(class))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(error: &anyhow::Error) -> Vec<String> {
        error.chain().map(ToString::to_string).collect()
    }

    #[test]
    fn a_lost_connection_stays_a_503_and_names_the_step() {
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let error = Err::<(), _>(lost).context("rotating the refresh token").unwrap_err();
        let ApiError::Unavailable(cause) = &error else { panic!("not a 503: {error:?}") };
        assert_eq!(error.status(), 503);
        assert_eq!(chain(cause)[0], "rotating the refresh token");
        assert!(chain(cause).len() > 1, "the database's own error stays in the chain: {cause:?}");
    }

    #[test]
    fn a_bug_is_a_500_naming_the_step_and_a_clients_error_is_untouched() {
        let bug = Err::<(), _>(sqlx::Error::RowNotFound).context("reading the user").unwrap_err();
        let ApiError::Unexpected(cause) = &bug else { panic!("not a 500: {bug:?}") };
        assert_eq!(chain(cause)[0], "reading the user");

        let client =
            Err::<(), _>(ApiError::InvalidCredentials).context("verifying the password").unwrap_err();
        assert!(matches!(client, ApiError::InvalidCredentials), "{client:?}");
    }
}

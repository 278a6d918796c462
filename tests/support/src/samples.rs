//! The sample events of `events/` made real: each placeholder replaced with what a fresh account
//! has, so that a tool can send any function its sample and expect the answer a user gets. The
//! bench, the rehearsal and the end-to-end suite drive every function this way, so none of them
//! keeps a list of the functions or of how to call each one.
//!
//! The placeholders (events/README.md): an account's address and password, its access and
//! refresh tokens, another of its sessions, and the tokens of its verification and reset links;
//! its TOTP factor (live or pending), a code and a recovery code of it, a sign-in waiting for
//! it and the "this wasn't me" link of its enrolment; and an address no account has. Only what an event names is made: a sample that names no
//! reset link leaves the account's mail limits untouched, so its function sends as it would for
//! a user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use shared::accounts::store::{
    Attempt, Opening, PendingSignIn, Started, create_user_with_session, start_session,
};
use shared::db::{Database, DbConnection};
use shared::domain::{Actor, Device, Email, MailKind, Password, SessionId, UserId};
use shared::domain::{FactorId, PasskeyId};
use shared::links::store::{MailRequest, request_mail};
use shared::mfa::recovery::{self, RecoveryCode};
use shared::mfa::seal::SealingKeys;
use shared::mfa::store::{Change, UndoToken, confirm_factor, replace_pending_factor};
use shared::mfa::totp::{self, TotpSecret};
use shared::passkeys::relying_party::{
    CEREMONY_TTL, RelyingParty, SIGN_IN_CONTEXT, SignInCeremony, ceremony_id,
};
use shared::passkeys::store::{self as passkeys, NewCeremony, NewPasskey};
use shared::sessions::store::NewSession;
use shared::tokens::{ChallengeId, MailToken, MfaToken, RefreshToken, TokenSigner};
use sqlx::PgPool;

use crate::PASSWORD;
use crate::authenticator::SoftwareAuthenticator;

/// An address with an account (the account's password is [`PASSWORD`]).
pub const EMAIL: &str = "REPLACE_WITH_AN_EMAIL";
/// An address no account has.
pub const NEW_EMAIL: &str = "REPLACE_WITH_A_NEW_EMAIL";
/// A live access token of the account.
pub const ACCESS_TOKEN: &str = "REPLACE_WITH_AN_ACCESS_TOKEN";
/// A live refresh token of the account (of the access token's session).
pub const REFRESH_TOKEN: &str = "REPLACE_WITH_A_REFRESH_TOKEN";
/// Another live session of the account.
pub const SESSION_ID: &str = "REPLACE_WITH_A_SESSION_ID";
/// The token of the account's verification link.
pub const VERIFICATION_LINK_TOKEN: &str = "REPLACE_WITH_THE_TOKEN_OF_A_VERIFICATION_LINK";
/// The token of the account's password-reset link.
pub const RESET_LINK_TOKEN: &str = "REPLACE_WITH_THE_TOKEN_OF_A_RESET_LINK";

/// A sign-in of the account waiting for its TOTP factor (the account then has a live one).
pub const MFA_TOKEN: &str = "REPLACE_WITH_AN_MFA_TOKEN";
/// A code of the account's TOTP factor (its live factor's, or its pending one's), of the next
/// 30-second step: accepted for a minute or more.
pub const TOTP_CODE: &str = "REPLACE_WITH_A_TOTP_CODE";
/// The id of the account's live TOTP factor (its session then proved it just now).
pub const FACTOR_ID: &str = "REPLACE_WITH_A_FACTOR_ID";
/// The id of the account's pending TOTP enrolment (the account then has no live factor).
pub const PENDING_FACTOR_ID: &str = "REPLACE_WITH_A_PENDING_FACTOR_ID";
/// An unused recovery code of the account's live factor.
pub const RECOVERY_CODE: &str = "REPLACE_WITH_A_RECOVERY_CODE";
/// The token of the "this wasn't me" link its live factor's enrolment mailed.
pub const UNDO_LINK_TOKEN: &str = "REPLACE_WITH_THE_TOKEN_OF_AN_UNDO_LINK";

/// The id of one of the account's passkeys.
pub const PASSKEY_ID: &str = "REPLACE_WITH_A_PASSKEY_ID";
/// The `challenge_id` of a passkey ceremony begun for the account (a registration by its
/// session, or a sign-in), which the event's credential answers.
pub const CHALLENGE_ID: &str = "REPLACE_WITH_A_CHALLENGE_ID";
/// An authenticator's answer (JSON) to a registration of the account's session; in an event's
/// body where the JSON object goes (the body is JSON once filled).
pub const REGISTRATION_CREDENTIAL: &str = "REPLACE_WITH_A_REGISTRATION_CREDENTIAL";
/// A passkey's answer (JSON) to a sign-in ceremony, by a passkey of the account; placed as
/// [`REGISTRATION_CREDENTIAL`] is.
pub const ASSERTION_CREDENTIAL: &str = "REPLACE_WITH_A_PASSKEY_ASSERTION";

/// The account's user id (the admin API's `{id}`).
pub const USER_ID: &str = "REPLACE_WITH_A_USER_ID";

/// Every placeholder a sample event may hold.
pub const PLACEHOLDERS: [&str; 18] = [
    USER_ID,
    EMAIL,
    NEW_EMAIL,
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    SESSION_ID,
    VERIFICATION_LINK_TOKEN,
    RESET_LINK_TOKEN,
    MFA_TOKEN,
    TOTP_CODE,
    FACTOR_ID,
    PENDING_FACTOR_ID,
    RECOVERY_CODE,
    UNDO_LINK_TOKEN,
    PASSKEY_ID,
    CHALLENGE_ID,
    REGISTRATION_CREDENTIAL,
    ASSERTION_CREDENTIAL,
];

/// The placeholders that need a live TOTP factor.
const LIVE_FACTOR_PLACEHOLDERS: [&str; 5] = [MFA_TOKEN, TOTP_CODE, FACTOR_ID, RECOVERY_CODE, UNDO_LINK_TOKEN];

/// `events/<binary>.json` below the repository's `root`.
pub fn sample_event_path(root: &Path, binary: &str) -> PathBuf {
    root.join("events").join(format!("{binary}.json"))
}

/// Makes the accounts the placeholders stand for, in the functions' database, and signs their
/// access tokens with the functions' key.
pub struct Fixture {
    db: Database,
    signer: TokenSigner,
    password_hash: String,
    mfa_keys: SealingKeys,
    relying_party: RelyingParty,
    app_url: String,
}

impl Fixture {
    /// A fixture writing through `pool` (the functions' database) and signing with `signer`
    /// (the functions' key, issuer and audience). Hashes [`PASSWORD`] once.
    pub async fn new(pool: PgPool, signer: TokenSigner) -> anyhow::Result<Self> {
        let email = Email::parse("sample@example.com")?;
        let password_hash = shared::passwords::hash(Password::parse(PASSWORD.to_owned(), &email)?).await?;
        let relying_party = RelyingParty::new(crate::APP_URL)?;
        Ok(Self {
            db: Database::from_pool(pool),
            signer,
            password_hash,
            mfa_keys: crate::mfa_keys(),
            relying_party,
            app_url: crate::APP_URL.to_owned(),
        })
    }

    /// Makes its passkeys for the web app at `app_url`, the functions' `APP_URL` (by default the
    /// tests', [`crate::APP_URL`]).
    pub fn with_app_url(self, app_url: &str) -> anyhow::Result<Self> {
        Ok(Self { relying_party: RelyingParty::new(app_url)?, app_url: app_url.to_owned(), ..self })
    }

    /// Seals the factors it makes with `keys`, the functions' MFA key ring (by default the tests'
    /// ring, [`crate::MFA_KEYS`], which every local run but the rehearsal gives them).
    pub fn with_mfa_keys(self, keys: SealingKeys) -> Self {
        Self { mfa_keys: keys, ..self }
    }

    /// `event` with every placeholder replaced: a fresh account when it names one, a fresh
    /// address for [`NEW_EMAIL`].
    pub async fn fill(&self, event: &str) -> anyhow::Result<String> {
        let mut filled = event.replace(NEW_EMAIL, &fresh_email());
        // Every placeholder but the new address stands for something of an account.
        if PLACEHOLDERS.iter().any(|placeholder| *placeholder != NEW_EMAIL && filled.contains(placeholder)) {
            for (placeholder, value) in self.account(&filled).await? {
                filled = filled.replace(placeholder, &value);
            }
        }
        Ok(filled)
    }

    /// A new account with what `event` names: (placeholder, value) pairs.
    async fn account(&self, event: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut db = self.db.connection().await.context("connecting to the functions' database")?;
        let email = Email::parse(&fresh_email())?;
        let device = Device { user_agent: Some("sample event".to_owned()), ip: None };
        let ttl = Duration::from_secs(3600);
        let (session, refresh) = (SessionId::generate(), RefreshToken::generate()?);
        let first = NewSession { id: session, token: &refresh.hash(), ttl, device: &device };
        let user = create_user_with_session(&mut db, UserId::generate(), &email, &self.password_hash, first)
            .await
            .context("creating the account")?;
        let access = self.signer.issue(user.id, session, &shared::domain::Assurance::password())?;
        let mut values = vec![
            (USER_ID, user.id.0.to_string()),
            (EMAIL, email.as_str().to_owned()),
            (ACCESS_TOKEN, access.token),
            (REFRESH_TOKEN, refresh.expose().to_owned()),
        ];
        if event.contains(PENDING_FACTOR_ID) {
            let (factor, secret) = enrol(&mut db, &self.mfa_keys, user.id).await?;
            values.push((PENDING_FACTOR_ID, factor.0.to_string()));
            values.push((TOTP_CODE, secret.code_at(now_step() + 1)));
        } else if LIVE_FACTOR_PLACEHOLDERS.iter().any(|placeholder| event.contains(placeholder)) {
            // Confirmed two steps back, within the session: the session proved the factor just
            // now, and the code (of the next step, so that a sample filled ahead of its call
            // still works for a minute or more) is fresh.
            let (factor, secret) = enrol(&mut db, &self.mfa_keys, user.id).await?;
            let codes = recovery::generate_set()?;
            let hashes: Vec<Vec<u8>> = codes.iter().map(RecoveryCode::hash).collect();
            let undo_link = MailToken::generate()?;
            let undo = UndoToken { token: &undo_link.hash(), ttl: Duration::from_secs(3600) };
            let confirmed = confirm_factor(
                &mut db,
                user.id,
                factor,
                now_step() - 2,
                &hashes,
                sample_actor(session),
                undo,
            )
            .await?;
            anyhow::ensure!(
                confirmed == Change::Done,
                "the sample's factor was not confirmed: {confirmed:?}"
            );
            values.push((FACTOR_ID, factor.0.to_string()));
            values.push((TOTP_CODE, secret.code_at(now_step() + 1)));
            values.push((RECOVERY_CODE, codes[0].expose().to_owned()));
            values.push((UNDO_LINK_TOKEN, undo_link.expose().to_owned()));
            if event.contains(MFA_TOKEN) {
                let token = MfaToken::generate()?;
                let pending = PendingSignIn { token: &token.hash(), ttl: Duration::from_secs(300) };
                let unused = RefreshToken::generate()?.hash();
                let session = NewSession { id: SessionId::generate(), token: &unused, ttl, device: &device };
                let attempt = Attempt::Login { source: None, source_limit: 1 };
                let opening = Opening { session, pending };
                let started =
                    start_session(&mut db, user.id, &email, attempt, &self.password_hash, None, opening)
                        .await
                        .context("a sign-in waiting for the factor")?;
                anyhow::ensure!(
                    matches!(started, Started::SecondFactorDue { .. }),
                    "no mfa token: {started:?}"
                );
                values.push((MFA_TOKEN, token.expose().to_owned()));
            }
        }
        if [PASSKEY_ID, CHALLENGE_ID].iter().any(|placeholder| event.contains(placeholder)) {
            values.extend(self.passkey_ceremony(&mut db, user.id, email.as_str(), session, event).await?);
        }
        if event.contains(SESSION_ID) {
            let other = SessionId::generate();
            let second =
                NewSession { id: other, token: &RefreshToken::generate()?.hash(), ttl, device: &device };
            let attempt = Attempt::Login { source: None, source_limit: 1 };
            let unused = MfaToken::generate()?.hash();
            let pending = PendingSignIn { token: &unused, ttl };
            let started = start_session(
                &mut db,
                user.id,
                &email,
                attempt,
                &self.password_hash,
                None,
                Opening { session: second, pending },
            )
            .await
            .context("a second session")?;
            anyhow::ensure!(started == Started::Session, "no second session: {started:?}");
            values.push((SESSION_ID, other.0.to_string()));
        }
        for (placeholder, kind) in
            [(VERIFICATION_LINK_TOKEN, MailKind::VerifyEmail), (RESET_LINK_TOKEN, MailKind::ResetPassword)]
        {
            if event.contains(placeholder) {
                let token = MailToken::generate()?;
                let decided = request_mail(&mut db, email.as_str(), kind, &token.hash(), u32::MAX, None)
                    .await
                    .context("storing a link")?;
                anyhow::ensure!(decided == MailRequest::Issued, "the link was not stored: {decided:?}");
                values.push((placeholder, token.expose().to_owned()));
            }
        }
        db.release();
        Ok(values)
    }
}

impl Fixture {
    /// The passkey placeholders `event` names: a registration begun by the account's `session`
    /// and answered by a software authenticator, or a passkey of the account (registered in
    /// that session) with a sign-in ceremony it answered.
    async fn passkey_ceremony(
        &self,
        db: &mut DbConnection,
        user: UserId,
        email: &str,
        session: SessionId,
        event: &str,
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
        let party = &self.relying_party;
        let mut authenticator = SoftwareAuthenticator::new(&self.app_url, false);
        let challenge = ChallengeId::generate()?;
        let (options, state) = party.registration(user, email, Vec::new())?;
        let ceremony = NewCeremony { challenge: &challenge.hash(), state: &state, ttl: CEREMONY_TTL };
        anyhow::ensure!(passkeys::begin_registration(db, user, session, ceremony).await?, "no registration");
        let credential = authenticator.register(&options).await?;
        if event.contains(REGISTRATION_CREDENTIAL) {
            return Ok(vec![
                (CHALLENGE_ID, challenge.expose().to_owned()),
                embedded(REGISTRATION_CREDENTIAL, &credential),
            ]);
        }
        let state = passkeys::take_registration(db, &challenge.hash(), user, session)
            .await?
            .context("the ceremony")?;
        let registered = party
            .registered(&serde_json::from_value(credential)?, &state)?
            .context("the sample's passkey did not verify")?;
        let id = PasskeyId::generate();
        let undo_link = MailToken::generate()?;
        let undo = UndoToken { token: &undo_link.hash(), ttl: Duration::from_secs(3600) };
        let passkey = NewPasskey {
            id,
            credential_id: &registered.id,
            credential: &registered.stored,
            name: "Sample",
            backup_eligible: registered.backup_eligible,
            sign_count: registered.counter,
        };
        let added = passkeys::add_passkey(db, user, sample_actor(session), passkey, undo).await?;
        anyhow::ensure!(added == Change::Done, "the sample's passkey was not added: {added:?}");
        let mut values = vec![(PASSKEY_ID, id.0.to_string())];
        if event.contains(ASSERTION_CREDENTIAL) {
            // Sealed with the functions' ring, as `login/begin` seals it.
            let (options, state) = party.sign_in()?;
            let ceremony =
                SignInCeremony { state, expires_at: time::OffsetDateTime::now_utc() + CEREMONY_TTL };
            let challenge = ceremony_id(&self.mfa_keys.seal(&ceremony.to_bytes()?, SIGN_IN_CONTEXT)?)?;
            let assertion = authenticator.sign(&options).await?;
            values.push((CHALLENGE_ID, challenge));
            values.push(embedded(ASSERTION_CREDENTIAL, &assertion));
        }
        Ok(values)
    }
}

/// A JSON value in place of `placeholder` in an event's body (a JSON string inside the event's
/// JSON): the value escaped as the body's text is.
fn embedded(placeholder: &'static str, value: &serde_json::Value) -> (&'static str, String) {
    let escaped = serde_json::to_string(&value.to_string()).expect("a string serialises");
    (placeholder, escaped[1..escaped.len() - 1].to_owned())
}

/// The current TOTP step.
fn now_step() -> u64 {
    totp::step_of(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    )
}

/// A pending TOTP enrolment of `user`, its secret sealed with `keys`.
async fn enrol(
    db: &mut DbConnection,
    keys: &SealingKeys,
    user: UserId,
) -> anyhow::Result<(FactorId, TotpSecret)> {
    let (factor, secret) = (FactorId::generate(), TotpSecret::generate()?);
    let sealed = keys.seal(secret.expose(), &factor.seal_context(user))?;
    replace_pending_factor(db, user, factor, &sealed).await.context("storing the enrolment")?;
    Ok((factor, secret))
}

/// An address no account has yet.
pub fn fresh_email() -> String {
    format!("sample-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The HTTP request a front door's sample event stands for.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The request of an API Gateway event (payload 2.0 or 1.0), `None` for an event no front door
/// sends (a schedule, a custom resource's, a direct invocation) and for one it sends only once it
/// verified the request's AWS signature (an `AWS_IAM` route's, the signer in
/// `requestContext.authorizer.iam`): those are invoked as the gateway delivers them.
pub fn request_of(event: &serde_json::Value) -> Option<SampleRequest> {
    if event.pointer("/requestContext/authorizer/iam").is_some() {
        return None;
    }
    let method = event.pointer("/requestContext/http/method").or_else(|| event.get("httpMethod"));
    let path = event.get("rawPath").or_else(|| event.get("path"));
    let (Some(method), Some(path)) = (method.and_then(|m| m.as_str()), path.and_then(|p| p.as_str())) else {
        return None;
    };
    let headers = event
        .get("headers")
        .and_then(|headers| headers.as_object())
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    let body = event.get("body").and_then(|body| body.as_str()).unwrap_or_default().to_owned();
    Some(SampleRequest { method: method.to_owned(), path: path.to_owned(), headers, body })
}

/// The sample's own session, from no device, as the security events of its changes name it.
fn sample_actor(session: SessionId) -> Actor<'static> {
    static NO_DEVICE: Device = Device { user_agent: None, ip: None };
    Actor { session, device: &NO_DEVICE }
}

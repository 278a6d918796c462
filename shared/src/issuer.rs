//! The `iss` of access tokens and the base URL of the discovery document: configured
//! (`JWT_ISSUER`: a custom domain, or a local server), or derived from the API that invokes the
//! function.
//!
//! The API's URL exists only once the stack does, and naming the API in the functions'
//! environment would make the template circular (the API's routes name the functions). So the
//! template leaves `JWT_ISSUER` empty and each function derives
//! `https://{apiId}.execute-api.{AWS_REGION}.amazonaws.com` from the first request it serves
//! through the HTTP API's `$default` stage: `requestContext.apiId` is written by API Gateway,
//! not by the client, and every function of a stack serves the same API, so all of them derive
//! the same issuer. Nothing else teaches it: a REST API has several stages a client may pick
//! (SAM's `Prod` and `Stage`, the console's test stage), so a sandbox that learnt from one
//! would refuse the tokens of another; function URLs and load balancers name no API (each
//! function has its own URL). Behind those, `JWT_ISSUER` must be set.

use std::sync::{Arc, OnceLock};

/// A cheap handle to the issuer, shared by the signer or verifier that uses it.
#[derive(Debug, Clone)]
pub struct Issuer(Arc<Source>);

#[derive(Debug)]
enum Source {
    Fixed(String),
    Derived { region: String, learnt: OnceLock<String> },
}

impl Issuer {
    /// A configured issuer.
    pub fn fixed(url: impl Into<String>) -> Self {
        Self(Arc::new(Source::Fixed(url.into())))
    }

    /// An issuer derived from the first request's API id, in `region` (`AWS_REGION`).
    pub fn derived(region: impl Into<String>) -> Self {
        Self(Arc::new(Source::Derived { region: region.into(), learnt: OnceLock::new() }))
    }

    /// Learns the API id from a request's context, if the issuer is derived and not yet known,
    /// and the request came through an HTTP API's `$default` stage. Anything but an API id's
    /// characters is ignored.
    pub fn learn(&self, api_id: &str, stage: &str) {
        let Source::Derived { region, learnt } = &*self.0 else { return };
        let plausible = !api_id.is_empty()
            && api_id.len() <= 64
            && api_id.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
        if plausible && stage == "$default" && learnt.get().is_none() {
            let url = format!("https://{api_id}.execute-api.{region}.amazonaws.com");
            if learnt.set(url).is_ok() {
                tracing::info!(issuer = self.get().unwrap_or_default(), "derived the issuer from the API id");
            }
        }
    }

    /// The issuer's URL, once known.
    pub fn get(&self) -> Option<&str> {
        match &*self.0 {
            Source::Fixed(url) => Some(url),
            Source::Derived { learnt, .. } => learnt.get().map(String::as_str),
        }
    }

    /// The issuer's URL, or why it is not known.
    pub fn require(&self) -> anyhow::Result<&str> {
        self.get().ok_or_else(|| {
            anyhow::anyhow!(
                "JWT_ISSUER is empty and no API Gateway request has named the API yet \
                 (requestContext.apiId, through the $default stage; REST APIs, function URLs and \
                 load balancers teach nothing), so the issuer cannot be derived"
            )
        })
    }
}

impl From<&str> for Issuer {
    fn from(url: &str) -> Self {
        Self::fixed(url)
    }
}

impl From<String> for Issuer {
    fn from(url: String) -> Self {
        Self::fixed(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_issuer_is_the_first_api_ids_execute_api_url() {
        let issuer = Issuer::derived("eu-west-1");
        let shared = issuer.clone();
        assert_eq!(issuer.get(), None);
        assert!(issuer.require().unwrap_err().to_string().contains("JWT_ISSUER"));

        shared.learn("a1b2c3d4e5", "$default");
        issuer.learn("zzzzzzzzzz", "$default");

        assert_eq!(issuer.get(), Some("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"));
    }

    #[test]
    fn a_named_stage_teaches_nothing() {
        let issuer = Issuer::derived("eu-west-1");
        for stage in ["Prod", "Stage", "test-invoke-stage", ""] {
            issuer.learn("a1b2c3d4e5", stage);
        }
        assert_eq!(issuer.get(), None);
    }

    #[test]
    fn an_implausible_api_id_teaches_nothing() {
        let issuer = Issuer::derived("eu-west-1");
        for api_id in ["", "evil.example.com/", "ABC", "a b"] {
            issuer.learn(api_id, "$default");
        }
        assert_eq!(issuer.get(), None);
    }

    #[test]
    fn a_configured_issuer_ignores_the_api_id() {
        let issuer = Issuer::fixed("https://auth.example.com");
        issuer.learn("a1b2c3d4e5", "$default");
        assert_eq!(issuer.get(), Some("https://auth.example.com"));
    }
}

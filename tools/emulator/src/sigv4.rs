//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) as a service checks it: the parts of the
//! `Authorization` header, the canonical request rebuilt from the request as received, and the
//! signature, compared in constant time.
//!
//! The canonical request is the one the AWS SDKs sign for services other than S3 (botocore's
//! `SigV4Auth`): the path as sent, with `.`, `..` and empty segments removed, percent-encoded
//! again; each query parameter decoded and re-encoded, sorted by name then value; each signed
//! header's values trimmed, inner runs of whitespace made one space, and joined with commas.

use hmac::{Hmac, KeyInit as _, Mac as _};
use http::HeaderMap;
use sha2::{Digest as _, Sha256};

/// The only algorithm SigV4 has.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last part of every credential scope.
pub const TERMINATOR: &str = "aws4_request";

/// The parameters of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// The header's three parameters, or the names of those it lacks (all three when it is not
    /// a SigV4 header at all).
    pub fn parse(header: &'a str) -> Result<Self, Vec<&'static str>> {
        let parameters = header.strip_prefix(ALGORITHM).filter(|rest| rest.starts_with(' '));
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for parameter in parameters.unwrap_or_default().split(',') {
            match parameter.trim().split_once('=') {
                Some(("Credential", value)) => credential = Some(value),
                Some(("SignedHeaders", value)) => signed_headers = Some(value),
                Some(("Signature", value)) => signature = Some(value),
                _ => {}
            }
        }
        match (credential, signed_headers, signature) {
            (Some(credential), Some(signed_headers), Some(signature)) => {
                Ok(Self { credential, signed_headers, signature })
            }
            _ => Err([
                (credential.is_none(), "Credential"),
                (signature.is_none(), "Signature"),
                (signed_headers.is_none(), "SignedHeaders"),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect()),
        }
    }

    /// The signed header names, lower case, in the header's order.
    pub fn signed_header_names(&self) -> impl Iterator<Item = String> + '_ {
        self.signed_headers.split(';').map(str::to_ascii_lowercase)
    }
}

/// `Credential=<access key>/<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential<'a> {
    pub access_key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub terminator: &'a str,
}

impl<'a> Credential<'a> {
    /// The five parts of a credential, if it has five.
    pub fn parse(credential: &'a str) -> Option<Self> {
        let mut parts = credential.split('/');
        let parsed = Self {
            access_key: parts.next()?,
            date: parts.next()?,
            region: parts.next()?,
            service: parts.next()?,
            terminator: parts.next()?,
        };
        parts.next().is_none().then_some(parsed)
    }

    /// `<date>/<region>/<service>/aws4_request`, as the string to sign names it.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/{}", self.date, self.region, self.service, self.terminator)
    }
}

/// What a signature covers, as the request was received.
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The lower-case names of the signed headers, in the order the signer listed them.
    pub signed_headers: &'a str,
    /// Hex SHA-256 of the body.
    pub payload_hash: &'a str,
}

/// The canonical request of SigV4's step 1.
pub fn canonical_request(request: &SignedRequest<'_>) -> String {
    let mut headers = String::new();
    for name in request.signed_headers.split(';') {
        let values: Vec<String> = request
            .headers
            .get_all(name)
            .iter()
            .map(|value| {
                String::from_utf8_lossy(value.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{headers}\n{}\n{}",
        request.method.to_ascii_uppercase(),
        canonical_uri(request.path),
        canonical_query(request.query.unwrap_or_default()),
        request.signed_headers,
        request.payload_hash
    )
}

/// The string to sign: the algorithm, the request's time (`x-amz-date`), the credential scope
/// and the hash of the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// The signing key derived from a secret access key for one day, region and service.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let date_key = hmac(format!("AWS4{secret_access_key}").as_bytes(), date.as_bytes());
    let region_key = hmac(&date_key, region.as_bytes());
    let service_key = hmac(&region_key, service.as_bytes());
    hmac(&service_key, TERMINATOR.as_bytes())
}

/// The signature of `string_to_sign`, in hex.
pub fn signature(signing_key: &[u8], string_to_sign: &str) -> String {
    hex(&hmac(signing_key, string_to_sign.as_bytes()))
}

/// Whether `signature` (hex) is the signature of `string_to_sign`, compared in constant time.
pub fn verify(signing_key: &[u8], string_to_sign: &str, signature: &str) -> bool {
    let Some(given) = unhex(signature) else { return false };
    mac(signing_key).chain_update(string_to_sign.as_bytes()).verify_slice(&given).is_ok()
}

/// The canonical URI: the path as sent with dot segments and empty segments removed (a trailing
/// `/` kept), then percent-encoded as a whole, `%` included, leaving only unreserved characters
/// and `/`.
pub fn canonical_uri(raw_path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut path = format!("/{}", segments.join("/"));
    if raw_path.ends_with('/') && !segments.is_empty() {
        path.push('/');
    }
    encode(path.as_bytes(), b"/")
}

/// The canonical query string: each `name=value` decoded and re-encoded with only unreserved
/// characters left as they are, sorted by name, then by value.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name), b""), encode(&decode(value), b""))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

/// Hex SHA-256, as SigV4 hashes payloads and canonical requests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    mac(key).chain_update(message).finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    pairs.map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

/// Percent-encodes every byte but the unreserved characters (`A-Z a-z 0-9 - _ . ~`) and `keep`,
/// with upper-case hex digits.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes to bytes; `+` and a malformed escape stay as they are.
fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_authorization_header_gives_its_three_parameters_or_names_those_missing() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=abc";
        let parsed = Authorization::parse(header).unwrap();
        assert_eq!(parsed.credential, "AKID/20150830/us-east-1/service/aws4_request");
        assert_eq!(parsed.signed_header_names().collect::<Vec<_>>(), ["host", "x-amz-date"]);
        assert_eq!(parsed.signature, "abc");

        assert_eq!(
            Authorization::parse("AWS4-HMAC-SHA256 Credential=a/b/c/d/e").unwrap_err(),
            ["Signature", "SignedHeaders"]
        );
        assert_eq!(
            Authorization::parse("Bearer token").unwrap_err(),
            ["Credential", "Signature", "SignedHeaders"]
        );
        assert!(Authorization::parse("AWS4-HMAC-SHA256Credential=a/b/c/d/e").is_err());
    }

    #[test]
    fn a_credential_has_exactly_five_parts() {
        let credential = Credential::parse("AKID/20150830/us-east-1/execute-api/aws4_request").unwrap();
        assert_eq!(credential.access_key, "AKID");
        assert_eq!(credential.scope(), "20150830/us-east-1/execute-api/aws4_request");
        assert!(Credential::parse("AKID/20150830/us-east-1/execute-api").is_none());
        assert!(Credential::parse("AKID/20150830/us-east-1/execute-api/aws4_request/x").is_none());
    }

    #[test]
    fn the_path_is_normalised_then_encoded_once_more() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/admin/users"), "/admin/users");
        assert_eq!(canonical_uri("/admin//./users/../users/"), "/admin/users/");
        assert_eq!(canonical_uri("/a/../.."), "/");
        assert_eq!(canonical_uri("/caf%C3%A9/a%20b~c"), "/caf%25C3%25A9/a%2520b~c");
        assert_eq!(canonical_uri("/x:y@z+w"), "/x%3Ay%40z%2Bw");
    }

    #[test]
    fn the_query_is_decoded_re_encoded_and_sorted_by_name_then_value() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=y&a=x&c"), "a=x&a=y&b=2&c=");
        assert_eq!(
            canonical_query("q=a%20b&p=%7e%2f&s=a+b&t=caf%C3%A9"),
            "p=~%2F&q=a%20b&s=a%2Bb&t=caf%C3%A9"
        );
        assert_eq!(canonical_query("%41=1"), "A=1");
    }

    /// The `get-vanilla` case of AWS's SigV4 test suite.
    #[test]
    fn the_signature_of_aws_s_vanilla_get_request_is_aws_s() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: None,
            headers: &headers,
            signed_headers: "host;x-amz-date",
            payload_hash: &sha256_hex(b""),
        };
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service");
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &canonical_request(&request),
        );

        let expected = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert_eq!(signature(&key, &to_sign), expected);
        assert!(verify(&key, &to_sign, expected));
        assert!(!verify(&key, &to_sign, &expected.replace('5', "6")));
        assert!(!verify(&key, &to_sign, "not hex"));
        assert!(!verify(&key, &to_sign, &expected[..62]));
    }

    #[test]
    fn header_values_are_trimmed_and_repeated_ones_joined() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost:3000"));
        headers.append("x-multi", HeaderValue::from_static("  a   b  "));
        headers.append("x-multi", HeaderValue::from_static("c"));
        let request = SignedRequest {
            method: "post",
            path: "/p",
            query: Some("z=1&a=2"),
            headers: &headers,
            signed_headers: "host;x-multi",
            payload_hash: "hash",
        };

        assert_eq!(
            canonical_request(&request),
            "POST\n/p\na=2&z=1\nhost:localhost:3000\nx-multi:a b,c\n\nhost;x-multi\nhash"
        );
    }
}

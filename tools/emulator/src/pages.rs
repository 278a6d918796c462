//! Static pages that stand in for the web app a deployment's mail links open (`--static-dir`):
//! a GET or HEAD that matches no route is answered with `DIR/<path>.html` when that file exists.
//!
//! Only plain paths map to a file: at most [`MAX_SEGMENTS`] non-empty segments of ASCII letters,
//! digits, `_` and `-`. No dot, so no `..`, no hidden file and no other extension; no `%`, so no
//! encoded escape either. `/` is not served.

use std::path::PathBuf;

use bytes::Bytes;
use http::Method;

use crate::gateway::GatewayResponse;
use crate::report::Log;

/// The deepest path a page may have.
pub const MAX_SEGMENTS: usize = 8;

/// The folder of pages.
#[derive(Debug, Clone)]
pub struct Pages {
    dir: PathBuf,
}

impl Pages {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file that stands for a request path (without its query), if the path may have one.
    pub fn file(&self, path: &str) -> Option<PathBuf> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let plain = |segment: &&str| {
            !segment.is_empty()
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if segments.len() > MAX_SEGMENTS || !segments.iter().all(plain) {
            return None;
        }
        let mut file = segments.iter().fold(self.dir.clone(), |file, segment| file.join(segment));
        file.set_extension("html");
        Some(file)
    }

    /// The answer to a request that matched no route, when a page stands for it: 200 with the
    /// page for a GET, its headers alone for a HEAD. `None` for other methods, for paths that
    /// may have no page, and for pages that do not exist.
    pub async fn answer(&self, method: &Method, path: &str, log: &Log) -> Option<GatewayResponse> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let file = self.file(path)?;
        let page = match tokio::fs::read(&file).await {
            Ok(page) => page,
            Err(error) => {
                if error.kind() != std::io::ErrorKind::NotFound {
                    log.line("api", format!("the page {} cannot be read: {error}", file.display()));
                }
                return None;
            }
        };
        let headers = [
            ("content-type", "text/html; charset=utf-8".to_owned()),
            ("cache-control", "no-store".to_owned()),
            // A page opened by a mail's link holds its token (in the fragment, which no Referer
            // carries; this keeps the page's own address out of every request it makes).
            ("referrer-policy", "no-referrer".to_owned()),
            // A HEAD's answer says how long the GET's body is.
            ("content-length", page.len().to_string()),
        ];
        let body = if method == Method::HEAD { Bytes::new() } else { Bytes::from(page) };
        Some(GatewayResponse {
            status: 200,
            headers: headers.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
            body,
        })
    }
}

/// The path the stand-in pages ask for a QR code at: `POST` with the text as the body.
pub const QR_PATH: &str = "/_dev/qr";

/// The most text a QR code is drawn for.
const QR_MAX_BYTES: usize = 2048;

/// `text` drawn as a QR code (SVG), for a stand-in page (the MFA page shows the otpauth URI of an
/// enrolment so that an authenticator app can scan it). Drawn here rather than by a script in the
/// page: the pages load nothing from elsewhere, and the secret never leaves the machine.
pub fn qr_code(text: &[u8]) -> GatewayResponse {
    let code = match (text.len() <= QR_MAX_BYTES).then(|| qrcode::QrCode::new(text)) {
        Some(Ok(code)) => code,
        _ => {
            return GatewayResponse {
                status: 400,
                headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
                body: Bytes::from_static(b"no QR code for this text"),
            };
        }
    };
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).build();
    GatewayResponse {
        status: 200,
        headers: vec![
            ("content-type".to_owned(), "image/svg+xml".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ],
        body: Bytes::from(svg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        Pages::new(PathBuf::from("/srv/app"))
    }

    #[test]
    fn a_qr_code_is_drawn_as_svg_for_text_of_a_qr_codes_size_only() {
        let uri = b"otpauth://totp/Auth:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Auth";
        let drawn = qr_code(uri);
        assert_eq!(drawn.status, 200);
        assert!(String::from_utf8_lossy(&drawn.body).contains("<svg"), "{:?}", drawn.body);
        assert_eq!(qr_code(&[b'a'; QR_MAX_BYTES + 1]).status, 400);
    }

    #[test]
    fn plain_paths_map_to_html_files_in_the_folder() {
        let pages = pages();
        assert_eq!(pages.file("/welcome"), Some(PathBuf::from("/srv/app/welcome.html")));
        assert_eq!(pages.file("/sign-up"), Some(PathBuf::from("/srv/app/sign-up.html")));
        assert_eq!(pages.file("/Account/sign_in-2"), Some(PathBuf::from("/srv/app/Account/sign_in-2.html")));
        assert_eq!(pages.file("/a/b/c/d/e/f/g/h"), Some(PathBuf::from("/srv/app/a/b/c/d/e/f/g/h.html")));
    }

    #[test]
    fn paths_that_could_leave_the_folder_or_reach_other_files_map_to_none() {
        let pages = pages();
        for path in [
            "/",
            "",
            "welcome",
            "/..",
            "/../secret",
            "/a/../../secret",
            "/%2e%2e/secret",
            "/%2E%2E%2Fsecret",
            "/a%2fb",
            "/.hidden",
            "/a/.b",
            "/a/b.",
            "/welcome.html",
            "/a//b",
            "//a",
            "/a/",
            "/a b",
            "/a\\b",
            "/caf\u{e9}",
            "/a/b/c/d/e/f/g/h/i",
        ] {
            assert_eq!(pages.file(path), None, "{path:?} must map to no file");
        }
    }

    #[tokio::test]
    async fn only_gets_and_heads_of_existing_pages_are_answered() {
        let dir = std::env::temp_dir().join(format!("local-lambda-pages-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/page.html"), "<p>page</p>").unwrap();
        let pages = Pages::new(dir.clone());
        let log = Log::captured();

        let get = pages.answer(&Method::GET, "/nested/page", &log).await;
        let head = pages.answer(&Method::HEAD, "/nested/page", &log).await;
        let post = pages.answer(&Method::POST, "/nested/page", &log).await;
        let missing = pages.answer(&Method::GET, "/nested/missing", &log).await;
        let folder = pages.answer(&Method::GET, "/nested", &log).await;
        std::fs::remove_dir_all(&dir).unwrap();

        let get = get.expect("the page");
        assert_eq!(get.status, 200);
        assert_eq!(get.body, Bytes::from_static(b"<p>page</p>"));
        assert!(get.headers.contains(&("content-type".into(), "text/html; charset=utf-8".into())));
        assert!(get.headers.contains(&("cache-control".into(), "no-store".into())));
        // A page reads a link's token from its fragment; no Referer takes the page's URL anywhere.
        assert!(get.headers.contains(&("referrer-policy".into(), "no-referrer".into())));
        let head = head.expect("the page's headers");
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert!(head.headers.contains(&("content-length".into(), "11".into())));
        assert_eq!((post, missing, folder), (None, None, None));
    }
}

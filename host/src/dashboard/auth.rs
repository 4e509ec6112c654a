//! Dashboard sessions, login and CSRF protection.
//!
//! A session is a cookie `wasmjob_session=ISSUED.NONCE.MAC`: when it was
//! issued (ms), 16 random bytes, and a blake3 keyed hash of both under the
//! session key, so the host keeps no session table. The CSRF token of a
//! session is another keyed hash of its nonce (under the CSRF key): every
//! form carries it and every POST is checked against it. Both keys are
//! derived from the host's token when it has one (sessions outlive a
//! restart, and a new token ends them all), else drawn at random at start.
//!
//! With a token, a request without a valid session is sent to `/login`;
//! without one (a loopback-only host) a session is issued silently, so the
//! forms are still protected against cross-site requests. Every POST also
//! has to come from the dashboard's own origin (`Origin`, `Sec-Fetch-Site`).
//! Tokens and MACs are compared as blake3 hashes, in constant time.

use super::pages::{Chrome, ErrorPage, render};
use crate::api::AppState;
use crate::clock::Millis;
use askama::Template;
use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// The session cookie's name.
const COOKIE: &str = "wasmjob_session";

/// How long a session lasts: a working day.
const SESSION_MS: Millis = 12 * 60 * 60 * 1000;

/// The dashboard's keys, and the token a login must give.
pub struct Sessions {
    session_key: [u8; 32],
    csrf_key: [u8; 32],
    /// blake3 of the host's token, when it has one.
    token: Option<blake3::Hash>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("login", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Keys derived from `token`, or random ones when there is none.
    pub fn new(token: Option<&str>) -> Sessions {
        let secret: Vec<u8> = match token {
            Some(token) => token.as_bytes().to_vec(),
            None => random::<32>().to_vec(),
        };
        Sessions {
            session_key: blake3::derive_key("wasmjob dashboard 2026 session", &secret),
            csrf_key: blake3::derive_key("wasmjob dashboard 2026 csrf", &secret),
            token: token.map(|t| blake3::hash(t.as_bytes())),
        }
    }

    /// Whether a login is needed (the host has a token).
    pub fn login_required(&self) -> bool {
        self.token.is_some()
    }

    fn mac(&self, issued: Millis, nonce: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.session_key, format!("{issued}.{nonce}").as_bytes())
    }

    /// A new session issued at `now`: its cookie value.
    fn issue(&self, now: Millis) -> (Session, String) {
        let nonce = hex(&random::<16>());
        let mac = self.mac(now, &nonce);
        let cookie = format!("{now}.{nonce}.{}", mac.to_hex());
        (self.session(nonce), cookie)
    }

    fn session(&self, nonce: String) -> Session {
        let csrf = blake3::keyed_hash(&self.csrf_key, nonce.as_bytes())
            .to_hex()
            .to_string();
        Session {
            csrf,
            login: self.login_required(),
            version: 0,
        }
    }

    /// The session a cookie value proves, if it is genuine and current.
    fn verify(&self, cookie: &str, now: Millis) -> Option<Session> {
        let mut parts = cookie.splitn(3, '.');
        let issued: Millis = parts.next()?.parse().ok()?;
        let nonce = parts.next()?;
        let mac = blake3::Hash::from_hex(parts.next()?).ok()?;
        // blake3::Hash compares in constant time.
        if mac != self.mac(issued, nonce) {
            return None;
        }
        if !(issued <= now && now - issued < SESSION_MS) {
            return None;
        }
        Some(self.session(nonce.to_owned()))
    }

    /// Whether `given` is the host's token (constant time).
    fn token_matches(&self, given: &str) -> bool {
        self.token
            .is_some_and(|token| blake3::hash(given.as_bytes()) == token)
    }
}

/// The session of the request, for pages and forms.
#[derive(Clone, Debug)]
pub struct Session {
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Whether it was opened by a login (a logout button makes sense).
    pub login: bool,
    /// The queue's change count when the request came, before the page
    /// read anything: where its event stream starts.
    pub version: u64,
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant time).
    fn csrf_matches(&self, given: &str) -> bool {
        match (
            blake3::Hash::from_hex(given),
            blake3::Hash::from_hex(&self.csrf),
        ) {
            (Ok(given), Ok(expected)) => given == expected,
            _ => false,
        }
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn set_cookie(value: &str, max_age_ms: Millis) -> HeaderValue {
    let cookie = format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        max_age_ms / 1000
    );
    HeaderValue::from_str(&cookie).expect("a cookie of hex digits")
}

/// Whether a POST comes from the dashboard's own origin. Browsers send
/// `Sec-Fetch-Site` (and `Origin` on POSTs); a request carrying neither is
/// not from a browser page, so not a cross-site forgery.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority == Some(host)
}

fn forbidden(message: &str) -> Response {
    ErrorPage::new(StatusCode::FORBIDDEN, "Forbidden", message).into_response()
}

/// The middleware in front of every page but the login: finds the
/// session (or sends the browser to the login, or issues one silently
/// without a token), and checks the origin and the CSRF token of every
/// POST. Pages find the [`Session`] in the request's extensions.
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let sessions = &state.sessions;
    let now = state.queue.now();
    let found = cookie_value(request.headers()).and_then(|c| sessions.verify(c, now));
    let post = request.method() == Method::POST;
    if post && !same_origin(request.headers()) {
        return forbidden("cross-origin request refused");
    }
    let (session, issued) = match found {
        Some(session) => (session, None),
        None if sessions.login_required() => {
            return if request.method() == Method::GET && !is_fragment(&request) {
                Redirect::to("/login").into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "log in first").into_response()
            };
        }
        None if post => return forbidden("no session: reload the page and try again"),
        None => {
            let (session, cookie) = sessions.issue(now);
            (session, Some(cookie))
        }
    };
    let request = if post {
        match check_csrf(request, &session).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    let mut request = request;
    let version = *state.queue.changes().borrow();
    request
        .extensions_mut()
        .insert(Session { version, ..session });
    let mut response = next.run(request).await;
    if let Some(cookie) = issued {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(&cookie, SESSION_MS));
    }
    response
}

fn is_fragment(request: &Request) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|q| q.contains("fragment="))
        || request.uri().path() == "/dashboard/events"
}

/// The most a dashboard form may send: a CSRF token and a name or two.
const FORM_LIMIT: usize = 4 * 1024;

/// Reads the POST's form to check its `csrf` field, then hands the body on.
async fn check_csrf(request: Request, session: &Session) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| forbidden("form too large"))?;
    match csrf_field(&bytes) {
        Some(given) if session.csrf_matches(&given) => {
            Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
        }
        _ => Err(forbidden(
            "missing or wrong CSRF token: reload the page and try again",
        )),
    }
}

/// The `csrf` field of a URL-encoded form (hex digits: nothing to decode).
fn csrf_field(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "csrf")
        .map(|(_, value)| value.to_owned())
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    error: Option<String>,
}

/// `GET /login`: the form, or the overview when no login is needed.
pub async fn login_page(State(state): State<AppState>) -> Response {
    if !state.sessions.login_required() {
        return Redirect::to("/").into_response();
    }
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: Chrome::anonymous("login"),
            error: None,
        },
    )
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: checks the token, opens a session, goes to the overview.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden("cross-origin request refused");
    }
    let sessions = &state.sessions;
    if !sessions.login_required() {
        return Redirect::to("/").into_response();
    }
    if !sessions.token_matches(&form.token) {
        return render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                chrome: Chrome::anonymous("login"),
                error: Some("That is not this host's token.".to_owned()),
            },
        );
    }
    let (_, cookie) = sessions.issue(state.queue.now());
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&cookie, SESSION_MS));
    response
}

/// `POST /logout`: forgets the cookie.
pub async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie("", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_verifies_until_it_expires_and_not_when_forged() {
        let sessions = Sessions::new(Some("secret"));
        let (session, cookie) = sessions.issue(1_000);
        let again = sessions.verify(&cookie, 2_000).expect("valid");
        assert_eq!(again.csrf, session.csrf);
        assert!(sessions.verify(&cookie, 1_000 + SESSION_MS).is_none());
        let other = Sessions::new(Some("another token"));
        assert!(other.verify(&cookie, 2_000).is_none());
        let tampered = cookie.replacen("1000.", "1001.", 1);
        assert!(sessions.verify(&tampered, 2_000).is_none());
        assert!(sessions.verify("garbage", 2_000).is_none());
    }

    #[test]
    fn csrf_tokens_differ_by_session() {
        let sessions = Sessions::new(None);
        let (a, _) = sessions.issue(1);
        let (b, _) = sessions.issue(1);
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches("not hex"));
    }

    #[test]
    fn only_the_token_logs_in() {
        let sessions = Sessions::new(Some("secret"));
        assert!(sessions.token_matches("secret"));
        assert!(!sessions.token_matches("secreT"));
        assert!(!Sessions::new(None).token_matches(""));
    }

    #[test]
    fn cross_origin_posts_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        assert!(same_origin(&headers(&[("host", "a:1")])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:1"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://evil"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "null")
        ])));
    }
}

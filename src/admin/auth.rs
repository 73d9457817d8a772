//! The admin token: `Authorization: Bearer <token>` on every POST/PUT/DELETE
//! when `admin.token` is set, compared in constant time.
use http::HeaderMap;
use subtle::ConstantTimeEq;

pub fn authorized(token: &str, headers: &HeaderMap) -> bool {
    if token.is_empty() {
        return true;
    }
    let Some(given) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    // Equal length is checked first (the length is not a secret worth hiding);
    // the bytes are compared without an early exit.
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(v).unwrap(),
        );
        m
    }

    #[test]
    fn bearer_tokens() {
        assert!(authorized("", &HeaderMap::new()));
        assert!(!authorized("s3cret", &HeaderMap::new()));
        assert!(authorized("s3cret", &h("Bearer s3cret")));
        assert!(authorized("s3cret", &h("bearer  s3cret ")));
        assert!(!authorized("s3cret", &h("Bearer s3cre")));
        assert!(!authorized("s3cret", &h("Bearer s3cret2")));
        assert!(!authorized("s3cret", &h("Basic s3cret")));
    }
}

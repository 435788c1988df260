//! A webhook's URL: an absolute `http://` or `https://` URL (RFC 3986), parsed once at load.
//! Pure: text in, value or message out.

use crate::limits::MAX_URL_LEN;

/// URL scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A parsed absolute http(s) URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// http or https.
    pub scheme: Scheme,
    /// Host name or IP address literal (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
    /// The full URL as written.
    pub text: String,
}

impl Url {
    /// The `Host` header value: host, bracketed if IPv6, with the port unless it is the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Parses an absolute `http://` or `https://` URL.
///
/// # Errors
/// A message naming what is wrong, for a diagnostic.
pub fn parse_url(s: &str) -> Result<Url, String> {
    if s.len() > MAX_URL_LEN {
        return Err(format!(
            "URL is {} bytes long; the limit is {MAX_URL_LEN}",
            s.len()
        ));
    }
    if s.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err("URL contains spaces or control characters; percent-encode them".into());
    }
    // Schemes are case-insensitive (RFC 3986 §3.1).
    let lower_prefix = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let (scheme, rest) = if lower_prefix.starts_with("http://") {
        (Scheme::Http, &s[7..])
    } else if lower_prefix.starts_with("https://") {
        (Scheme::Https, &s[8..])
    } else {
        return Err(format!("URL `{s}` must start with http:// or https://"));
    };
    #[cfg(not(feature = "tls"))]
    if scheme == Scheme::Https {
        return Err("https URLs need a build with the `tls` feature".into());
    }
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not allowed: use `auth` (they would leak into logs)".into(),
        );
    }
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let close = r.find(']').ok_or("unclosed `[` in URL host")?;
        let host = &r[..close];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        (host, &r[close + 1..])
    } else {
        let colon = authority.find(':').unwrap_or(authority.len());
        (&authority[..colon], &authority[colon..])
    };
    if host.is_empty() {
        return Err(format!("URL `{s}` has no host"));
    }
    if !host.contains(':')
        && (!host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            || host.trim_end_matches('.').split('.').any(str::is_empty))
    {
        return Err(format!("`{host}` is not a valid host name"));
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some("") => return Err("missing port number after `:`".into()),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{p}` is not a valid port"))?,
        None => return Err(format!("unexpected `{port}` after the URL host")),
    };
    let tail = tail.split('#').next().unwrap_or("");
    // Only characters a request target may carry (RFC 3986): anything else must be
    // percent-encoded in the config, so what is sent is exactly what was written.
    let b = tail.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let ok = c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&c);
        if !ok {
            return Err(format!(
                "URL contains `{}`, which must be percent-encoded",
                tail[i..].chars().next().unwrap_or('?')
            ));
        }
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if c == b'%' && !(hex(i + 1) && hex(i + 2)) {
            return Err("URL has a `%` not followed by two hex digits".into());
        }
    }
    let path_and_query = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Ok(Url {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path_and_query,
        text: s.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/hook?a=1#frag").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path_and_query.as_str()),
            (Scheme::Http, "127.0.0.1", 8080, "/hook?a=1")
        );
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        #[cfg(feature = "tls")]
        {
            let u = parse_url("https://Example.NET").unwrap();
            assert_eq!(
                (u.host.as_str(), u.port, u.path_and_query.as_str()),
                ("example.net", 443, "/")
            );
            assert_eq!(u.host_header(), "example.net");
        }
        #[cfg(not(feature = "tls"))]
        assert!(
            parse_url("https://example.net/").is_err(),
            "a build without TLS refuses https at load"
        );
        let u = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.host_header(), "[::1]:9");
        assert_eq!(parse_url("HTTP://h/").unwrap().scheme, Scheme::Http);
        let u = parse_url("hTTp://h/a%20b?x=%C3%BC").unwrap();
        assert_eq!(u.path_and_query, "/a%20b?x=%C3%BC");
        assert_eq!(
            parse_url("http://h:/").unwrap_err(),
            "missing port number after `:`"
        );
        for s in [
            "ftp://x",
            "http://",
            "http://:80/",
            "http://a:0/",
            "http://a:99999/",
            "http://u:p@h/",
            "http://a b/",
            "http://[zz]/",
            "http://h:80x/",
            "http://h/ü",
            "http://h/a\"b",
            "http://h/{x}",
            "http://h/a|b",
            "http://h/%zz",
            "http://h/%2",
            "http://../",
            "http://a..b/",
            "http://.a/",
        ] {
            assert!(parse_url(s).is_err(), "{s} should be rejected");
        }
    }
}

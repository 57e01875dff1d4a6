//! Where webhooks may go: HTTPS to hosts with public addresses only, so that an endpoint cannot make the
//! server call into its own network. The check runs when an endpoint is saved and again on every delivery:
//! the HTTP client resolves names through [`PublicResolver`], which refuses any answer that is not public,
//! so a name that later points inside (DNS rebinding) gets nothing.

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};

/// `allow_loopback` (the operator's `SCRIP_WEBHOOK_ALLOW_LOOPBACK`, off by default) also admits plain
/// `http` to loopback addresses and `localhost`: for local development and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    pub allow_loopback: bool,
}

impl UrlPolicy {
    /// Whether webhooks may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        is_public(ip)
    }

    /// What can be told without DNS: the scheme, the host's name, and an address given literally.
    pub fn check_static(&self, text: &str) -> Result<Url, String> {
        let url = Url::parse(text).map_err(|err| format!("url is not a valid URL: {err}"))?;
        let host = url
            .host_str()
            .ok_or("url has no host")?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let loopback = match literal {
            Some(ip) => ip.is_loopback(),
            None => host == "localhost" || host.ends_with(".localhost"),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_loopback && loopback => {}
            _ => return Err("url must use https".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url may not carry credentials".into());
        }
        if loopback && !self.allow_loopback {
            return Err(format!("url's host {host} is a loopback address"));
        }
        if host.ends_with(".local") || host.ends_with(".internal") {
            return Err(format!("url's host {host} is a private name"));
        }
        if let Some(ip) = literal
            && !self.allows(ip)
        {
            return Err(format!("url's host {ip} is not a public address"));
        }
        Ok(url)
    }

    /// The full check of a URL being saved: [`Self::check_static`], then every address the host resolves
    /// to must be allowed.
    pub async fn check(&self, text: &str) -> Result<(), String> {
        let url = self.check_static(text)?;
        let host = url.host_str().unwrap_or_default();
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
        {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|err| format!("url's host {host} does not resolve: {err}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("url's host {host} does not resolve"));
        }
        if let Some(refused) = addrs.iter().find(|a| !self.allows(a.ip())) {
            return Err(format!(
                "url's host {host} resolves to {}, which is not a public address",
                refused.ip()
            ));
        }
        Ok(())
    }
}

/// Resolves names for the delivery client, keeping only addresses the policy allows.
#[derive(Debug, Clone)]
pub struct PublicResolver(pub UrlPolicy);

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Not private, shared (CGNAT), link-local, loopback, unspecified, multicast, broadcast or documentation
/// space; IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_local_names_are_refused() {
        let strict = UrlPolicy::default();
        for url in [
            "http://example.com/hook",
            "https://10.1.2.3/hook",
            "https://192.168.0.7/hook",
            "https://172.16.0.1/hook",
            "https://100.64.0.1/hook",
            "https://169.254.169.254/latest",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://localhost/hook",
            "https://printer.local/hook",
            "https://db.internal/hook",
            "https://user:pw@example.com/hook",
            "ftp://example.com/hook",
        ] {
            assert!(strict.check_static(url).is_err(), "{url} was allowed");
        }
        assert!(strict.check_static("https://example.com/hook").is_ok());
        assert!(strict.check_static("https://93.184.215.14/hook").is_ok());
    }

    #[test]
    fn the_loopback_setting_admits_local_http_only() {
        let dev = UrlPolicy {
            allow_loopback: true,
        };
        assert!(dev.check_static("http://127.0.0.1:9000/hook").is_ok());
        assert!(dev.check_static("http://localhost:9000/hook").is_ok());
        assert!(dev.check_static("http://example.com/hook").is_err());
        assert!(dev.check_static("https://10.0.0.1/hook").is_err());
    }
}

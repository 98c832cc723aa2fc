//! Abuse limits of function URLs: a token bucket per URL and one per source address, and a
//! cap on each URL's requests in flight. A request over any of them is answered 429 with
//! `Retry-After` before its body is read or any function runs.
//!
//! Memory is bounded: URL entries exist only for URLs that were configured when asked about
//! (the listener looks the id up first) and are capped at [`MAX_URLS`], source entries at
//! [`MAX_SOURCES`]; at a cap, the entries whose buckets are full again and that have nothing
//! in flight (idle ones) are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// The most source addresses tracked at once.
pub const MAX_SOURCES: usize = 65_536;
/// The most URLs tracked at once (more than a server keeps, so that URLs deleted and made
/// again are forgotten once idle).
pub const MAX_URLS: usize = 16_384;

/// Requests per second and the burst a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens a bucket holds (at least 1).
    pub burst: f64,
}

impl Rate {
    /// `per_second` requests a second, with a burst of one second's worth.
    pub fn per_second(n: u32) -> Rate {
        let n = f64::from(n.max(1));
        Rate {
            per_second: n,
            burst: n,
        }
    }
}

/// The limits `warden serve` sets from its flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UrlLimitSettings {
    /// Requests per second to one URL, from everyone.
    pub per_url: Rate,
    /// Requests per second from one source address, to every URL.
    pub per_source: Rate,
    /// Requests to one URL being served at once.
    pub max_in_flight: usize,
}

impl Default for UrlLimitSettings {
    fn default() -> Self {
        UrlLimitSettings {
            per_url: Rate::per_second(5_000),
            per_source: Rate::per_second(1_000),
            max_in_flight: 1_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// Seconds until a token is there (at least 1, as `Retry-After` counts whole seconds).
    fn wait(&self, rate: Rate) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        // Bounded: `per_second` is at least 1, so at most one second's wait per token.
        (missing / rate.per_second).ceil().max(1.0) as u64
    }
}

/// Why a request was refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `Retry-After`, in seconds.
    pub retry_after: u64,
    /// Which limit: `url`, `source` or `in-flight`.
    pub limit: &'static str,
}

#[derive(Default)]
struct State {
    urls: HashMap<String, (Bucket, usize)>,
    sources: HashMap<IpAddr, Bucket>,
}

/// The limits of every URL and source; shared by the URL listener's requests.
pub struct UrlLimits {
    settings: UrlLimitSettings,
    state: Arc<Mutex<State>>,
}

/// A request admitted: its URL's in-flight count drops when this does.
pub struct InFlight {
    url_id: String,
    state: Arc<Mutex<State>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, n)) = state.urls.get_mut(&self.url_id) {
            *n = n.saturating_sub(1);
        }
    }
}

impl UrlLimits {
    /// Limits as `settings` says.
    pub fn new(settings: UrlLimitSettings) -> UrlLimits {
        UrlLimits {
            settings,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Admits one request to `url_id` from `source`, or says why not. A refused request
    /// takes no token from a bucket it did not pass.
    pub fn admit(&self, url_id: &str, source: IpAddr) -> Result<InFlight, Refusal> {
        self.admit_at(url_id, source, Instant::now())
    }

    fn admit_at(&self, url_id: &str, source: IpAddr, now: Instant) -> Result<InFlight, Refusal> {
        let s = self.settings;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.sources.contains_key(&source) && state.sources.len() >= MAX_SOURCES {
            state.sources.retain(|_, b| {
                b.refill(s.per_source, now);
                b.tokens < s.per_source.burst
            });
            if state.sources.len() >= MAX_SOURCES {
                state.sources.clear();
            }
        }
        if !state.urls.contains_key(url_id) && state.urls.len() >= MAX_URLS {
            state.urls.retain(|_, (b, n)| {
                b.refill(s.per_url, now);
                *n > 0 || b.tokens < s.per_url.burst
            });
        }
        let mut src = state
            .sources
            .get(&source)
            .copied()
            .unwrap_or_else(|| Bucket::full(s.per_source, now));
        src.refill(s.per_source, now);
        let (mut url, in_flight) = state
            .urls
            .get(url_id)
            .copied()
            .unwrap_or_else(|| (Bucket::full(s.per_url, now), 0));
        url.refill(s.per_url, now);
        let refusal = if src.tokens < 1.0 {
            Some(Refusal {
                retry_after: src.wait(s.per_source),
                limit: "source",
            })
        } else if url.tokens < 1.0 {
            Some(Refusal {
                retry_after: url.wait(s.per_url),
                limit: "url",
            })
        } else if in_flight >= s.max_in_flight {
            Some(Refusal {
                retry_after: 1,
                limit: "in-flight",
            })
        } else {
            None
        };
        if refusal.is_none() {
            src.tokens -= 1.0;
            url.tokens -= 1.0;
        }
        state.sources.insert(source, src);
        let admitted = refusal.is_none();
        state
            .urls
            .insert(url_id.to_owned(), (url, in_flight + usize::from(admitted)));
        match refusal {
            Some(r) => Err(r),
            None => Ok(InFlight {
                url_id: url_id.to_owned(),
                state: Arc::clone(&self.state),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on what it did not expect"
    )]
    use super::*;
    use std::time::Duration;

    fn limits(url: u32, source: u32, in_flight: usize) -> UrlLimits {
        UrlLimits::new(UrlLimitSettings {
            per_url: Rate::per_second(url),
            per_source: Rate::per_second(source),
            max_in_flight: in_flight,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_source_over_its_rate_is_refused_until_its_bucket_refills() {
        let l = limits(100, 2, 100);
        let t = Instant::now();
        let _a = l.admit_at("u", A, t).unwrap();
        let _b = l.admit_at("u", A, t).unwrap();
        let refused = l.admit_at("u", A, t).err().unwrap();
        assert_eq!(refused.limit, "source");
        assert_eq!(refused.retry_after, 1);
        // Another source is not held back by it.
        assert!(l.admit_at("u", B, t).is_ok());
        // Half a second later one token (of two a second) is back.
        assert!(l.admit_at("u", A, t + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn a_url_over_its_rate_is_refused_whoever_asks() {
        let l = limits(2, 100, 100);
        let t = Instant::now();
        assert!(l.admit_at("u", A, t).is_ok());
        assert!(l.admit_at("u", B, t).is_ok());
        assert_eq!(l.admit_at("u", A, t).err().unwrap().limit, "url");
        // Other URLs have their own bucket.
        assert!(l.admit_at("v", A, t).is_ok());
    }

    #[test]
    fn in_flight_requests_are_capped_and_released_on_drop() {
        let l = limits(100, 100, 2);
        let t = Instant::now();
        let a = l.admit_at("u", A, t).unwrap();
        let _b = l.admit_at("u", A, t).unwrap();
        assert_eq!(l.admit_at("u", A, t).err().unwrap().limit, "in-flight");
        drop(a);
        assert!(l.admit_at("u", A, t).is_ok());
    }

    #[test]
    fn the_source_table_stays_bounded() {
        let l = limits(1_000_000, 1, 1_000_000);
        let t = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            drop(l.admit_at("u", ip, t));
        }
        let state = l.state.lock().unwrap();
        assert!(state.sources.len() <= MAX_SOURCES);
    }
}

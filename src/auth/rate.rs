//! Request rates and socket counts per client IP and per user (SEMANTICS
//! "Abuse, limits and sessions"): keyed GCRA limiters from `governor`, and
//! counted socket permits. Per instance, in memory; every map is bounded.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

use crate::{
    config::Limits,
    error::{AppError, AppResult},
};

/// Keys a limiter keeps before it forgets the idle ones.
const MAX_KEYS: usize = 100_000;

/// The client's address, as the connection gives it (None where there is no
/// connection, as in tests driving the router directly: one shared bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The client of a request that came from `peer`: the peer itself, or,
    /// when the peer is a trusted proxy, the nearest address in
    /// `X-Forwarded-For` that is not one of the trusted proxies (the
    /// addresses before it are the client's own word and prove nothing).
    pub fn of(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ipnet::IpNet]) -> Self {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return Self(Some(peer));
        }
        let client = forwarded_for
            .into_iter()
            .flat_map(|header| header.rsplit(','))
            .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
            .find(|ip| !is_trusted(ip));
        Self(Some(client.unwrap_or(peer)))
    }
}

struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    what: &'static str,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota, what: &'static str) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            what,
        }
    }

    fn check(&self, key: &K) -> AppResult<()> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                message: format!("too many {}; try again later", self.what),
                retry_after: wait.as_secs() + 1,
            }
        })
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Every rate limit and socket cap of one instance; all pass when switched off.
pub struct RateLimits {
    enabled: bool,
    sign_ins: Keyed<Option<IpAddr>>,
    registrations: Keyed<Option<IpAddr>>,
    sends: Keyed<Uuid>,
    sockets: Arc<Mutex<SocketCounts>>,
    sockets_per_user: usize,
    sockets_per_ip: usize,
}

#[derive(Default)]
struct SocketCounts {
    per_ip: HashMap<Option<IpAddr>, usize>,
    per_user: HashMap<Uuid, usize>,
}

/// An open socket's place in the counts, given back when it drops.
pub struct SocketPermit {
    sockets: Arc<Mutex<SocketCounts>>,
    ip: Option<Option<IpAddr>>,
    user: Option<Uuid>,
}

fn lock(sockets: &Mutex<SocketCounts>) -> std::sync::MutexGuard<'_, SocketCounts> {
    sockets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn release<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.sockets);
        if let Some(ip) = &self.ip {
            release(&mut counts.per_ip, ip);
        }
        if let Some(user) = &self.user {
            release(&mut counts.per_user, user);
        }
    }
}

impl RateLimits {
    pub fn new(enabled: bool, limits: &Limits) -> Self {
        Self {
            enabled,
            sign_ins: Keyed::new(
                Quota::per_minute(nonzero(limits.sign_ins_per_ip_per_minute)),
                "sign-in attempts from this address",
            ),
            registrations: Keyed::new(
                Quota::per_hour(nonzero(limits.registrations_per_ip_per_hour)),
                "registrations from this address",
            ),
            sends: Keyed::new(
                Quota::per_second(nonzero(limits.sends_per_user_per_second))
                    .allow_burst(nonzero(limits.send_burst)),
                "messages sent",
            ),
            sockets: Arc::default(),
            sockets_per_user: limits.sockets_per_user,
            sockets_per_ip: limits.sockets_per_ip,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn sign_in(&self, ip: ClientIp) -> AppResult<()> {
        if !self.enabled {
            return Ok(());
        }
        self.sign_ins.check(&ip.0)
    }

    pub fn register(&self, ip: ClientIp) -> AppResult<()> {
        if !self.enabled {
            return Ok(());
        }
        self.registrations.check(&ip.0)
    }

    pub fn send(&self, user: Uuid) -> AppResult<()> {
        if !self.enabled {
            return Ok(());
        }
        self.sends.check(&user)
    }

    /// A socket from `ip`: None when the address holds its share already.
    pub fn open_socket(&self, ip: ClientIp) -> Option<SocketPermit> {
        let mut counts = lock(&self.sockets);
        let n = counts.per_ip.entry(ip.0).or_insert(0);
        if self.enabled && *n >= self.sockets_per_ip {
            return None;
        }
        *n += 1;
        Some(SocketPermit {
            sockets: self.sockets.clone(),
            ip: Some(ip.0),
            user: None,
        })
    }

    /// The socket signs in as `user`: false when the user holds their share already.
    pub fn sign_in_socket(&self, permit: &mut SocketPermit, user: Uuid) -> bool {
        let mut counts = lock(&self.sockets);
        if let Some(previous) = permit.user.take() {
            release(&mut counts.per_user, &previous);
        }
        let n = counts.per_user.entry(user).or_insert(0);
        if self.enabled && *n >= self.sockets_per_user {
            return false;
        }
        *n += 1;
        permit.user = Some(user);
        true
    }
}

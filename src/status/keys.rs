//! The Redis key layout (documented for downstream services in `docs/redis.md`).
//!
//! Every per-user key carries the user id in a hash tag (`{…}`), so a user's status, dedup and
//! cooldown keys live in one Redis Cluster slot and the Lua script that updates them together
//! runs there.

/// Keys under one prefix (`redis.key-prefix`, `vigil:` by default).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The user's status: one hash, read in one call (`HGETALL`).
    pub fn status(&self, user: &str) -> String {
        format!("{}user:{{{user}}}", self.prefix)
    }

    /// Set once per output id, so an output applied twice (a replay after a crash, a moved
    /// partition) changes the status once.
    pub fn dedup(&self, user: &str, output_id: &str) -> String {
        format!("{}dedup:{{{user}}}:{output_id}", self.prefix)
    }

    /// Present while a rule's cooldown after a firing lasts; holds the firing's id.
    pub fn cooldown(&self, user: &str, rule: &str) -> String {
        format!("{}cooldown:{{{user}}}:{rule}", self.prefix)
    }

    /// One silence, as JSON, expiring with it.
    pub fn silence(&self, id: &str) -> String {
        format!("{}silence:{id}", self.prefix)
    }

    /// The set of silence ids (members whose silence key has expired are pruned on read).
    pub fn silence_index(&self) -> String {
        format!("{}silences", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_keys_share_one_hash_tag() {
        let k = Keys::new("vigil:");
        assert_eq!(k.status("u1"), "vigil:user:{u1}");
        assert_eq!(k.dedup("u1", "abc"), "vigil:dedup:{u1}:abc");
        assert_eq!(k.cooldown("u1", "hrv_drop"), "vigil:cooldown:{u1}:hrv_drop");
        assert_eq!(k.silence("s1"), "vigil:silence:s1");
        assert_eq!(Keys::new("").silence_index(), "silences");
    }
}

//! Redis: the status, dedup and cooldown keys, and the silences (key layout in
//! [`super::keys`]).
//!
//! The synchronous client runs on the shared-state thread, with a timeout on every connect,
//! read and write, so a Redis that hangs is an error within `timeout`, never a stuck thread.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::{Commands, Connection};

use super::keys::Keys;
use super::silence::Silence;
use super::user::{rfc3339_of_ms, StatusOutput, UserStatus, DEDUP_TTL, STATUS_TTL};

/// Applies one output to its user's status, once per output id (see [`super::status`]).
/// KEYS: status, dedup, cooldown. ARGV: dedup TTL, change, rule, summary, baseline, cooldown
/// TTL (0: none), output id, status TTL.
const APPLY_OUTPUT: &str = r"
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local change, rule = ARGV[2], ARGV[3]
if change == 'firing' then
  redis.call('HSET', KEYS[1], 'firing:' .. rule, ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'alerts_fired', 1)
  if tonumber(ARGV[6]) > 0 then
    redis.call('SET', KEYS[3], ARGV[7], 'EX', ARGV[6])
  end
elseif change == 'resolved' then
  redis.call('HDEL', KEYS[1], 'firing:' .. rule)
  redis.call('HINCRBY', KEYS[1], 'alerts_resolved', 1)
else
  redis.call('HSET', KEYS[1], 'milestone:' .. rule, ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'milestones', 1)
end
redis.call('HSET', KEYS[1], 'baseline:' .. rule, ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[8])
return 1
";

/// Moves a user's last event time forward (never back: instances and replays may deliver an
/// older one late). KEYS: status. ARGV: ms, RFC 3339, status TTL.
const TOUCH: &str = r"
local have = tonumber(redis.call('HGET', KEYS[1], 'last_event_ms') or '')
if have == nil or tonumber(ARGV[1]) > have then
  redis.call('HSET', KEYS[1], 'last_event_ms', ARGV[1], 'last_event_time', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// A connection to Redis, made again after any error.
pub struct RedisStore {
    client: redis::Client,
    connection: Option<Connection>,
    keys: Keys,
    timeout: Duration,
    apply_output: redis::Script,
    touch: redis::Script,
}

impl RedisStore {
    /// Checks the URL; connects on first use.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> redis::RedisResult<RedisStore> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            connection: None,
            keys: Keys::new(prefix),
            timeout,
            apply_output: redis::Script::new(APPLY_OUTPUT),
            touch: redis::Script::new(TOUCH),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn connection(&mut self) -> redis::RedisResult<&mut Connection> {
        if self.connection.is_none() {
            let mut c = self.client.get_connection_with_timeout(self.timeout)?;
            c.set_read_timeout(Some(self.timeout))?;
            c.set_write_timeout(Some(self.timeout))?;
            self.apply_output.prepare_invoke().load(&mut c)?;
            self.touch.prepare_invoke().load(&mut c)?;
            self.connection = Some(c);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no connection")))
    }

    /// Runs `f` on the connection, dropping the connection when it fails so the next call
    /// connects afresh.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Connection, &Keys) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let keys = self.keys.clone();
        let result = self.connection().and_then(|c| f(c, &keys));
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    /// Round-trip time of a PING.
    pub fn ping(&mut self) -> redis::RedisResult<Duration> {
        self.with(|c, _| {
            let start = Instant::now();
            redis::cmd("PING").query::<String>(c)?;
            Ok(start.elapsed())
        })
    }

    /// Applies last event times and outputs in one pipeline (one round trip). Returns how many
    /// outputs changed a status (the rest were applied before).
    pub fn apply(
        &mut self,
        touched: &[(String, i64)],
        outputs: &[StatusOutput],
    ) -> redis::RedisResult<u64> {
        let touch = self.touch.get_hash().to_string();
        let apply = self.apply_output.get_hash().to_string();
        self.with(|c, keys| {
            let mut pipe = redis::pipe();
            let status_ttl = STATUS_TTL.as_secs();
            for (user, ms) in touched {
                pipe.cmd("EVALSHA")
                    .arg(&touch)
                    .arg(1)
                    .arg(keys.status(user))
                    .arg(ms)
                    .arg(rfc3339_of_ms(*ms))
                    .arg(status_ttl)
                    .ignore();
            }
            for o in outputs {
                pipe.cmd("EVALSHA")
                    .arg(&apply)
                    .arg(3)
                    .arg(keys.status(&o.user))
                    .arg(keys.dedup(&o.user, &o.id))
                    .arg(keys.cooldown(&o.user, &o.rule))
                    .arg(DEDUP_TTL.as_secs())
                    .arg(o.change.name())
                    .arg(&o.rule)
                    .arg(&o.summary)
                    .arg(&o.baseline)
                    .arg(o.cooldown_secs)
                    .arg(&o.id)
                    .arg(status_ttl);
            }
            let applied: Vec<u64> = pipe.query(c)?;
            Ok(applied.iter().sum())
        })
    }

    /// One user's status (`HGETALL`).
    pub fn user_status(&mut self, user: &str) -> redis::RedisResult<UserStatus> {
        self.with(|c, keys| {
            let fields: HashMap<String, String> = c.hgetall(keys.status(user))?;
            Ok(UserStatus {
                fields: fields.into_iter().collect(),
            })
        })
    }

    /// The firing id holding a user's cooldown for `rule`, while it lasts.
    pub fn cooldown(&mut self, user: &str, rule: &str) -> redis::RedisResult<Option<String>> {
        self.with(|c, keys| c.get(keys.cooldown(user, rule)))
    }

    /// Stores a silence, expiring when it does.
    pub fn add_silence(&mut self, silence: &Silence, now: DateTime<Utc>) -> redis::RedisResult<()> {
        let json = serde_json::to_string(silence).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "json", e.to_string()))
        })?;
        self.with(|c, keys| {
            redis::pipe()
                .atomic()
                .set_ex(keys.silence(&silence.id), json, silence.ttl_seconds(now))
                .ignore()
                .sadd(keys.silence_index(), &silence.id)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Removes a silence; `false` when there was none with this id (or it had expired).
    pub fn remove_silence(&mut self, id: &str) -> redis::RedisResult<bool> {
        self.with(|c, keys| {
            let (deleted, _): (u64, u64) = redis::pipe()
                .atomic()
                .del(keys.silence(id))
                .srem(keys.silence_index(), id)
                .query(c)?;
            Ok(deleted > 0)
        })
    }

    /// The silences that have not expired. Ids whose key has expired are pruned from the
    /// index as a side effect.
    pub fn silences(&mut self) -> redis::RedisResult<Vec<Silence>> {
        self.with(|c, keys| {
            let ids: Vec<String> = c.smembers(keys.silence_index())?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let names: Vec<String> = ids.iter().map(|id| keys.silence(id)).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&names).query(c)?;
            let mut silences = Vec::new();
            let mut gone = Vec::new();
            for (id, value) in ids.iter().zip(values) {
                match value.and_then(|v| serde_json::from_str::<Silence>(&v).ok()) {
                    Some(s) => silences.push(s),
                    None => gone.push(id.clone()),
                }
            }
            if !gone.is_empty() {
                c.srem::<_, _, ()>(keys.silence_index(), gone)?;
            }
            silences.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
            Ok(silences)
        })
    }
}

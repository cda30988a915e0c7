//! Users, groups, password hashes (Argon2id, PHC strings) and session tokens.
//!
//! A users file has one user a line, `#` starts a comment:
//!
//! ```text
//! # name     group     password hash (from `gridtwin cloud --print-hash PASSWORD`)   what they may see
//! alice      operator  $argon2id$v=19$m=19456,t=2,p=1$...
//! h01        customer  $argon2id$v=19$...                                          lmu=3 account=h01
//! h02        producer  $argon2id$v=19$...                                          account=h02
//! ```
//!
//! Operators see and command everything; a customer sees only the LMU `lmu` and the wallet `account`; a
//! producer sees only the plants whose owner is `account`. Users can also be given on the command line as
//! `NAME:GROUP:PASSWORD[:lmu=N][:account=X]` (hashed at start-up; only the hash is kept).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Operator,
    Customer,
    Producer,
}

impl std::str::FromStr for Group {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "operator" => Ok(Group::Operator),
            "customer" => Ok(Group::Customer),
            "producer" => Ok(Group::Producer),
            _ => Err(format!("unknown group `{s}` (expected operator, customer or producer)")),
        }
    }
}

/// One user (the password only as its hash).
#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub name: String,
    pub group: Group,
    #[serde(skip)]
    pub password_hash: String,
    /// The customer's LMU.
    pub lmu: Option<u32>,
    /// The customer's wallet or the producer's owner name in the market's outputs.
    pub account: Option<String>,
}

impl User {
    /// May this user read LMU `lmu`'s data?
    pub fn may_read_lmu(&self, lmu: u32) -> bool {
        self.group == Group::Operator || (self.group == Group::Customer && self.lmu == Some(lmu))
    }
    /// May this user read account `acc` (a wallet or a producer's plants)?
    pub fn may_read_account(&self, acc: &str) -> bool {
        self.group == Group::Operator || self.account.as_deref() == Some(acc)
    }
}

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random bytes for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

fn extras(user: &mut User, words: &[&str], at: &str) -> Result<(), String> {
    for w in words {
        if let Some(v) = w.strip_prefix("lmu=") {
            user.lmu = Some(v.parse().map_err(|_| format!("{at}: `{w}`: the LMU id must be an integer"))?);
        } else if let Some(v) = w.strip_prefix("account=") {
            user.account = Some(v.to_string());
        } else {
            return Err(format!("{at}: unexpected `{w}` (expected lmu=N or account=NAME)"));
        }
    }
    if user.group == Group::Customer && user.lmu.is_none() && user.account.is_none() {
        return Err(format!("{at}: customer `{}` needs lmu=N and/or account=NAME", user.name));
    }
    if user.group == Group::Producer && user.account.is_none() {
        return Err(format!("{at}: producer `{}` needs account=NAME (the plants' owner)", user.name));
    }
    Ok(())
}

/// The known users.
#[derive(Default)]
pub struct Users {
    by_name: BTreeMap<String, User>,
    dummy_hash: String,
}

impl Users {
    pub fn new() -> Self {
        Users { by_name: BTreeMap::new(), dummy_hash: hash_password("not a password").unwrap_or_default() }
    }

    fn add(&mut self, u: User, at: &str) -> Result<(), String> {
        if self.by_name.contains_key(&u.name) {
            return Err(format!("{at}: user `{}` is defined twice", u.name));
        }
        self.by_name.insert(u.name.clone(), u);
        Ok(())
    }

    /// Reads a users file (format in the module docs); errors name the file and line.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", i + 1);
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 3 {
                return Err(format!("{at}: expected `NAME GROUP PASSWORD_HASH [lmu=N] [account=NAME]`"));
            }
            PasswordHash::new(words[2]).map_err(|e| format!("{at}: the password hash is not a PHC string ({e})"))?;
            let mut u = User {
                name: words[0].to_string(),
                group: words[1].parse().map_err(|e| format!("{at}: {e}"))?,
                password_hash: words[2].to_string(),
                lmu: None,
                account: None,
            };
            extras(&mut u, &words[3..], &at)?;
            self.add(u, &at)?;
        }
        Ok(())
    }

    /// Adds `NAME:GROUP:PASSWORD[:lmu=N][:account=X]`, hashing the password.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let name = parts.first().copied().unwrap_or("");
        let at = format!("--user {name}:...");
        if parts.len() < 3 || name.is_empty() || parts[2].is_empty() {
            return Err(format!("{at}: expected NAME:GROUP:PASSWORD[:lmu=N][:account=NAME]"));
        }
        let mut u = User {
            name: name.to_string(),
            group: parts[1].parse().map_err(|e| format!("{at}: {e}"))?,
            password_hash: hash_password(parts[2])?,
            lmu: None,
            account: None,
        };
        extras(&mut u, &parts[3..], &at)?;
        self.add(u, &at)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// The user if the password matches (an unknown name costs the same hash time as a known one).
    pub fn check(&self, name: &str, password: &str) -> Option<&User> {
        match self.by_name.get(name) {
            Some(u) if verify(password, &u.password_hash) => Some(u),
            Some(_) => None,
            None => {
                let _ = verify(password, &self.dummy_hash);
                None
            }
        }
    }
}

/// Most sessions held at once (the oldest is dropped beyond this).
pub const MAX_SESSIONS: usize = 10_000;
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Bearer tokens of logged-in users.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<BTreeMap<String, (String, Instant)>>,
}

impl Sessions {
    /// A new token for `user`.
    pub fn create(&self, user: &str) -> Result<String, String> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| format!("no random bytes for a token: {e}"))?;
        let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let mut m = self.map.lock().map_err(|_| "session table poisoned".to_string())?;
        let now = Instant::now();
        m.retain(|_, (_, t)| now.duration_since(*t) < SESSION_TTL);
        if m.len() >= MAX_SESSIONS
            && let Some(oldest) = m.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone())
        {
            m.remove(&oldest);
        }
        m.insert(token.clone(), (user.to_string(), now));
        Ok(token)
    }

    /// The user name of a live token.
    pub fn user(&self, token: &str) -> Option<String> {
        let m = self.map.lock().ok()?;
        m.get(token).filter(|(_, t)| t.elapsed() < SESSION_TTL).map(|(u, _)| u.clone())
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_and_specs() {
        let h = hash_password("pw").unwrap();
        let mut u = Users::new();
        u.add_file("users.txt", &format!("# c\nop operator {h}\nc1 customer {h} lmu=3 account=h01\n")).unwrap();
        u.add_spec("p1:producer:secret:account=h02").unwrap();
        assert_eq!(u.check("op", "pw").unwrap().group, Group::Operator);
        assert!(u.check("op", "wrong").is_none());
        assert!(u.check("nobody", "pw").is_none());
        let c = u.check("c1", "pw").unwrap();
        assert!(c.may_read_lmu(3) && !c.may_read_lmu(4));
        assert!(u.check("p1", "secret").unwrap().may_read_account("h02"));
        let err = u
            .add_file(
                "users.txt",
                "x customer $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2g lmu=x",
            )
            .unwrap_err();
        assert!(err.starts_with("users.txt:1:"), "{err}");
        assert!(u.add_file("f", &format!("a wizard {h}")).unwrap_err().contains("unknown group"));
        assert!(u.add_spec("q:customer:pw").unwrap_err().contains("needs lmu"));
        assert!(u.add_spec("op:operator:x").unwrap_err().contains("twice"));
    }

    #[test]
    fn sessions() {
        let s = Sessions::default();
        let t = s.create("a").unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(s.user(&t).as_deref(), Some("a"));
        s.remove(&t);
        assert!(s.user(&t).is_none());
    }
}

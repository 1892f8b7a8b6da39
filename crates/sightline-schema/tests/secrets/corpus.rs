//! The secret corpus: one entry per published token format, HTTP auth header, URL credential,
//! CLI flag, connection string and `.env` line that sightline must never store, built from the
//! formats' public documentation (prefixes, alphabets and lengths; the values are made up), and
//! the scripts to embed them in. Shared by the example and the property tests; it must never
//! hold a real credential.

// Each test binary that includes this module uses a different part of it.
#![allow(
    dead_code,
    reason = "each test binary that includes this module uses a different part of it"
)]

/// One secret as it is written somewhere (`text`) and the parts that must not survive.
pub struct Secret {
    pub label: &'static str,
    pub text: String,
    pub needles: Vec<String>,
    /// A command line: it needs a word boundary before it (`ключmysql` is not a command).
    pub command: bool,
}

/// A deterministic "random" string over `alphabet`: distinct per seed, looks like a token.
pub fn tail(seed: u64, len: usize, alphabet: &str) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chars[(x % chars.len() as u64) as usize]
        })
        .collect()
}

pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const HEX: &str = "0123456789abcdef";
pub const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b64encode(data: &[u8]) -> String {
    let table = B64.as_bytes();
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64url_nopad(data: &[u8]) -> String {
    b64encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn entry(label: &'static str, text: String, needles: &[&str]) -> Secret {
    Secret {
        label,
        text,
        needles: needles.iter().map(|s| s.to_string()).collect(),
        command: false,
    }
}

fn command(label: &'static str, text: String, needles: &[&str]) -> Secret {
    Secret {
        command: true,
        ..entry(label, text, needles)
    }
}

/// A token whose whole text must go.
fn token(label: &'static str, value: String) -> Secret {
    let needle = value.clone();
    entry(label, value, &[&needle])
}

/// Every secret of the corpus, in its usual surroundings.
pub fn corpus() -> Vec<Secret> {
    let mut v = Vec::new();
    // Item 1 of issue 11: a sensitive name, `:`/`=`, then non-ASCII.
    v.push(entry("token: résumé", "token: résumé".into(), &["résumé"]));
    v.push(entry(
        "password: abcdef€",
        "password: abcdef€".into(),
        &["abcdef€"],
    ));
    v.push(entry("api_key = 🔑", "api_key = 🔑🗝".into(), &["🔑🗝"]));
    v.push(entry(
        "password CJK",
        "password=秘密の合言葉".into(),
        &["秘密の合言葉"],
    ));
    // Names and values.
    v.push(entry(
        "password=",
        "db_password=Hunter2-Corpus".into(),
        &["Hunter2-Corpus"],
    ));
    v.push(entry(
        "PASSWORD quoted",
        "PASSWORD=\"zq1 zq2 zq3\"".into(),
        &["zq1", "zq2", "zq3"],
    ));
    v.push(entry(
        "yaml single quoted",
        "secret: 'yq1 yq2'".into(),
        &["yq1", "yq2"],
    ));
    v.push(entry(
        "json in text",
        "{\"password\": \"jq1 jq2\"}".into(),
        &["jq1", "jq2"],
    ));
    v.push(entry(
        "db_pass",
        "db_pass=DbPassValue9".into(),
        &["DbPassValue9"],
    ));
    v.push(entry("pass=", "pass=BarePassVal".into(), &["BarePassVal"]));
    v.push(entry(
        "pwd",
        "MYSQL_PWD=MyPwdValue3".into(),
        &["MyPwdValue3"],
    ));
    v.push(entry(
        "xml",
        "<password>XmlPw-1</password>".into(),
        &["XmlPw-1"],
    ));
    v.push(entry(
        "python dict",
        "{'api_key': 'PyDictKey7'}".into(),
        &["PyDictKey7"],
    ));
    v.push(entry(
        "environ",
        "os.environ[\"API_TOKEN\"] = \"EnvironTok\"".into(),
        &["EnvironTok"],
    ));
    v.push(entry(
        "query string",
        "GET /cb?code=1&access_token=QsTok-55&x=1".into(),
        &["QsTok-55"],
    ));
    v.push(entry(
        "nested quote",
        "password=token=\"nq1 nq2\"".into(),
        &["nq1", "nq2"],
    ));
    // .env lines.
    v.push(entry(
        ".env",
        "export GITHUB_TOKEN=EnvGhTok-31".into(),
        &["EnvGhTok-31"],
    ));
    v.push(entry(
        ".env key",
        "APP_KEY=base64:AppKeyB64Zx9=".into(),
        &["AppKeyB64Zx9"],
    ));
    v.push(entry(
        ".env secret",
        "SECRET_KEY_BASE=\"skb1 skb2\"".into(),
        &["skb1", "skb2"],
    ));
    v.push(entry(
        ".env dsn",
        "SENTRY_DSN=https://pubkey123@o1.ingest.example/1".into(),
        &["pubkey123"],
    ));
    // URL credentials.
    v.push(entry(
        "https userinfo",
        "https://alice:UrlPw-7@host.example/x".into(),
        &["UrlPw-7"],
    ));
    v.push(entry(
        "postgres",
        "postgres://u:PgSecret-42@db:5432/app".into(),
        &["PgSecret-42"],
    ));
    v.push(entry(
        "mongodb+srv",
        "mongodb+srv://u:MongoS3cret@cluster0.example/db".into(),
        &["MongoS3cret"],
    ));
    v.push(entry(
        "redis",
        "redis://:RedisPw99@cache:6379/0".into(),
        &["RedisPw99"],
    ));
    v.push(entry(
        "amqp",
        "amqp://guest:AmqpPw77@mq.example:5672/".into(),
        &["AmqpPw77"],
    ));
    v.push(entry(
        "token as user",
        format!("https://{}@github.com/o/r.git", tail(1, 40, ALNUM)),
        &[&tail(1, 40, ALNUM)],
    ));
    // HTTP auth.
    let basic = b64encode(b"alice:BasicPw-1");
    v.push(entry(
        "Authorization: Basic",
        format!("Authorization: Basic {basic}"),
        &[&basic],
    ));
    v.push(entry(
        "Basic standalone",
        format!("-H \"Basic {basic}\""),
        &[&basic],
    ));
    let proxy = b64encode(b"bob:ProxyPw-2");
    v.push(entry(
        "Proxy-Authorization",
        format!("Proxy-Authorization: Basic {proxy}"),
        &[&proxy],
    ));
    let bearer = tail(2, 32, URLSAFE);
    v.push(entry(
        "Authorization: Bearer",
        format!("Authorization: Bearer {bearer}"),
        &[&bearer],
    ));
    v.push(entry(
        "Bearer standalone",
        format!("use Bearer {bearer}"),
        &[&bearer],
    ));
    v.push(entry(
        "Digest",
        "Authorization: Digest username=\"a\", response=\"6629fae49393a05397450978507c4ef1\""
            .into(),
        &["6629fae49393a05397450978507c4ef1"],
    ));
    v.push(entry(
        "Cookie header",
        "Cookie: sid=CookieSid1; csrf=CookieCsrf2".into(),
        &["CookieSid1", "CookieCsrf2"],
    ));
    v.push(entry(
        "Set-Cookie",
        "Set-Cookie: session=SetCookieS3; Path=/; HttpOnly".into(),
        &["SetCookieS3"],
    ));
    v.push(entry(
        "X-Api-Key",
        "X-Api-Key: XApiKeyVal4".into(),
        &["XApiKeyVal4"],
    ));
    // CLI flags.
    v.push(command(
        "curl -u",
        "curl -u alice:CurlPw-77 https://api.example".into(),
        &["CurlPw-77"],
    ));
    v.push(command(
        "curl --user",
        "curl --user alice:CurlPw-88 https://api.example".into(),
        &["CurlPw-88"],
    ));
    v.push(entry(
        "--password",
        "tool --password PwFlag-1 --verbose".into(),
        &["PwFlag-1"],
    ));
    v.push(entry(
        "--password=",
        "tool --password=PwFlag-2".into(),
        &["PwFlag-2"],
    ));
    v.push(entry(
        "--token",
        "gh --token TokFlag-3 repo".into(),
        &["TokFlag-3"],
    ));
    v.push(entry(
        "--token=",
        "gh --token=TokFlag-5 repo".into(),
        &["TokFlag-5"],
    ));
    v.push(entry(
        "--api-key",
        "llm --api-key KeyFlag-4 ask".into(),
        &["KeyFlag-4"],
    ));
    v.push(entry(
        "--client-secret",
        "az --client-secret CsFlag-6".into(),
        &["CsFlag-6"],
    ));
    v.push(command(
        "mysql -p attached",
        "mysql -u root -pMyPwAttached app".into(),
        &["MyPwAttached"],
    ));
    v.push(command(
        "mysql -p spaced",
        "mysql -u root -p MyPwSpaced".into(),
        &["MyPwSpaced"],
    ));
    v.push(command(
        "mysqldump",
        "mysqldump -h db -pDumpPw-3 app > x.sql".into(),
        &["DumpPw-3"],
    ));
    v.push(command(
        "sshpass",
        "sshpass -p SshPassPw ssh host".into(),
        &["SshPassPw"],
    ));
    v.push(command(
        "redis-cli",
        "redis-cli -h cache -a RedisCliPw ping".into(),
        &["RedisCliPw"],
    ));
    v.push(command(
        "mongosh",
        "mongosh -u admin -p MongoShPw".into(),
        &["MongoShPw"],
    ));
    // Payment APIs.
    v.push(token(
        "stripe sk_live",
        format!("sk_live_{}", tail(3, 24, ALNUM)),
    ));
    v.push(token(
        "stripe sk_test",
        format!("sk_test_{}", tail(4, 24, ALNUM)),
    ));
    v.push(token(
        "stripe rk_live",
        format!("rk_live_{}", tail(5, 24, ALNUM)),
    ));
    v.push(token(
        "stripe whsec",
        format!("whsec_{}", tail(6, 32, ALNUM)),
    ));
    // Chat tools.
    for (i, p) in ["xoxa-", "xoxb-", "xoxp-", "xoxs-", "xoxr-"]
        .iter()
        .enumerate()
    {
        let label: &'static str = match i {
            0 => "slack xoxa",
            1 => "slack xoxb",
            2 => "slack xoxp",
            3 => "slack xoxs",
            _ => "slack xoxr",
        };
        v.push(token(
            label,
            format!(
                "{p}1234567890-1234567890123-{}",
                tail(7 + i as u64, 24, ALNUM)
            ),
        ));
    }
    v.push(token(
        "slack xapp",
        format!("xapp-1-A0123456789-1234567890123-{}", tail(12, 64, HEX)),
    ));
    let hook = format!(
        "T{}/B{}/{}",
        tail(13, 8, UPPER_DIGITS),
        tail(14, 8, UPPER_DIGITS),
        tail(15, 24, ALNUM)
    );
    v.push(entry(
        "slack webhook",
        format!("https://hooks.slack.com/services/{hook}"),
        &[&hook],
    ));
    let discord_hook = format!("123456789012345678/{}", tail(16, 68, URLSAFE));
    v.push(entry(
        "discord webhook",
        format!("https://discord.com/api/webhooks/{discord_hook}"),
        &[&discord_hook],
    ));
    let bot_id = b64url_nopad(b"198622483471925248");
    let discord = format!(
        "{bot_id}.{}.{}",
        tail(17, 6, URLSAFE),
        tail(18, 27, URLSAFE)
    );
    v.push(token("discord bot token", discord.clone()));
    v.push(entry(
        "discord Bot header",
        format!("Authorization: Bot {discord}"),
        &[&discord],
    ));
    let teams = format!(
        "{}@{}/IncomingWebhook/{}",
        tail(19, 32, HEX),
        tail(20, 32, HEX),
        tail(21, 32, HEX)
    );
    // Each part too: a redaction that stops at the `@` leaves the last two.
    v.push(entry(
        "teams webhook",
        format!("https://acme.webhook.office.com/webhookb2/{teams}"),
        &[&teams, &tail(20, 32, HEX), &tail(21, 32, HEX)],
    ));
    // Cloud providers.
    let akia = format!("AKIA{}", tail(22, 16, UPPER_DIGITS));
    let aws_secret = tail(23, 40, B64);
    v.push(token("aws AKIA", akia.clone()));
    v.push(token(
        "aws ASIA",
        format!("ASIA{}", tail(24, 16, UPPER_DIGITS)),
    ));
    v.push(entry(
        "aws credentials file",
        format!("aws_access_key_id = {akia}\naws_secret_access_key = {aws_secret}"),
        &[&akia, &aws_secret],
    ));
    v.push(entry(
        "aws bare pair",
        format!("{akia} {aws_secret}"),
        &[&akia, &aws_secret],
    ));
    v.push(entry(
        "aws session token",
        format!("AWS_SESSION_TOKEN={}", tail(25, 300, B64)),
        &[&tail(25, 300, B64)],
    ));
    v.push(token(
        "google api key",
        format!("AIza{}", tail(26, 35, URLSAFE)),
    ));
    v.push(token(
        "google oauth",
        format!("ya29.{}", tail(27, 120, URLSAFE)),
    ));
    v.push(token(
        "google client secret",
        format!("GOCSPX-{}", tail(28, 28, URLSAFE)),
    ));
    v.push(token(
        "digitalocean",
        format!("dop_v1_{}", tail(29, 64, HEX)),
    ));
    let account_key = format!("{}==", tail(30, 86, B64));
    v.push(entry(
        "azure storage",
        format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={account_key};EndpointSuffix=core.windows.net"),
        &[&account_key],
    ));
    let sb_key = format!("{}=", tail(31, 43, B64));
    v.push(entry(
        "azure service bus",
        format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={sb_key}"),
        &[&sb_key],
    ));
    v.push(entry(
        "sql server",
        "Server=tcp:db,1433;Database=app;User ID=sa;Password=SqlPw-9;Encrypt=true".into(),
        &["SqlPw-9"],
    ));
    v.push(entry(
        "odbc braces",
        "DRIVER={x};UID=u;PWD={Odbc;Pw}".into(),
        &["Odbc;Pw"],
    ));
    v.push(entry(
        "libpq",
        "host=db user=u password=LibpqPw sslmode=require".into(),
        &["LibpqPw"],
    ));
    // AI providers.
    v.push(token(
        "openai legacy",
        format!("sk-{}", tail(32, 48, ALNUM)),
    ));
    v.push(token(
        "openai project",
        format!("sk-proj-{}", tail(33, 120, URLSAFE)),
    ));
    v.push(token(
        "anthropic",
        format!("sk-ant-api03-{}AA", tail(34, 93, URLSAFE)),
    ));
    v.push(token("hugging face", format!("hf_{}", tail(35, 34, ALNUM))));
    v.push(token("groq", format!("gsk_{}", tail(36, 52, ALNUM))));
    v.push(token("replicate", format!("r8_{}", tail(37, 37, ALNUM))));
    // VCS hosts.
    for (i, p) in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].iter().enumerate() {
        let label: &'static str = match i {
            0 => "github ghp",
            1 => "github gho",
            2 => "github ghu",
            3 => "github ghs",
            _ => "github ghr",
        };
        v.push(token(
            label,
            format!("{p}{}", tail(38 + i as u64, 36, ALNUM)),
        ));
    }
    v.push(token(
        "github fine-grained",
        format!("github_pat_{}_{}", tail(43, 22, ALNUM), tail(44, 59, ALNUM)),
    ));
    v.push(token("gitlab", format!("glpat-{}", tail(45, 20, URLSAFE))));
    // Package registries.
    v.push(token("npm", format!("npm_{}", tail(46, 36, ALNUM))));
    v.push(token(
        "pypi",
        format!("pypi-AgEIcHlwaS5vcmc{}", tail(47, 70, URLSAFE)),
    ));
    // Mail and messaging.
    v.push(token(
        "sendgrid",
        format!("SG.{}.{}", tail(48, 22, URLSAFE), tail(49, 43, URLSAFE)),
    ));
    v.push(token("twilio api key", format!("SK{}", tail(50, 32, HEX))));
    v.push(entry(
        "twilio auth token",
        format!("TWILIO_AUTH_TOKEN={}", tail(51, 32, HEX)),
        &[&tail(51, 32, HEX)],
    ));
    v.push(entry(
        "twilio url",
        format!(
            "https://AC{}:{}@api.twilio.com/",
            tail(52, 32, HEX),
            tail(53, 32, HEX)
        ),
        &[&tail(53, 32, HEX)],
    ));
    // JWT and PEM.
    let jwt = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.{}",
        b64url_nopad(b"{\"sub\":\"1234567890\",\"name\":\"corpus\"}"),
        tail(54, 43, URLSAFE)
    );
    v.push(token("jwt", jwt));
    for (label, kind) in [
        ("pem rsa", "RSA PRIVATE KEY"),
        ("pem pkcs8", "PRIVATE KEY"),
        ("pem ec", "EC PRIVATE KEY"),
        ("pem openssh", "OPENSSH PRIVATE KEY"),
        ("pem encrypted", "ENCRYPTED PRIVATE KEY"),
    ] {
        let body = tail(55 + label.len() as u64, 64, B64);
        v.push(entry(
            label,
            format!(
                "-----BEGIN {kind}-----\n{body}\n{}\n-----END {kind}-----",
                tail(60, 40, B64)
            ),
            &[&body],
        ));
    }
    v
}

/// Keys whose value is a secret whatever it holds, as they appear in nested JSON.
pub const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "db_pass",
    "pass",
    "passwd",
    "pwd",
    "db_pwd",
    "ssh_key",
    "encryption_key",
    "master_key",
    "private_key",
    "auth_header",
    "Authentication",
    "Authorization",
    "token_value",
    "dsn",
    "credentials",
    "secret",
    "secret_sauce",
    "client_secret",
    "cookie",
    "set-cookie",
    "session_token",
    "accessToken",
    "X-Api-Key",
    "AccountKey",
    "basic_auth",
    "OPENAI_KEY",
];

/// Scripts to embed secrets in: (name, before, after). Each has a spaced and a tight variant.
pub const SCRIPTS: &[(&str, &str, &str)] = &[
    ("latin", "Voilà le rapport, Grüße: ", " — à bientôt, ça va"),
    ("cyrillic", "Пароль от базы данных: ", " — не показывать"),
    ("cjk", "数据库的密码是 ", " です。よろしく"),
    ("arabic", "\u{200F}كلمة المرور هي ", " شكرا\u{200F}"),
    ("emoji", "🔐👩\u{200D}💻 ", " 🎉🇫🇷"),
    ("combining", "e\u{301}te\u{301} ", " \u{301}\u{303}ñ"),
];

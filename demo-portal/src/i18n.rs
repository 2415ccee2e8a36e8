//! Japanese and English text, chosen from the browser's `Accept-Language`.

use axum::http::{header::ACCEPT_LANGUAGE, HeaderMap};

/// A language of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// The language the browser prefers among ours: the highest `q` wins,
    /// the earlier tag on a tie. Japanese when it names neither, since the
    /// first users are Japanese.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let header = headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let tag = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("ja") => Lang::Ja,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Ja, |(_, lang)| lang)
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// The texts in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
}

/// Every text of the portal. `{email}` is replaced where it appears.
pub struct Texts {
    pub title: &'static str,
    pub sign_in_heading: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub sign_in_button: &'static str,
    pub demo_users_hint: &'static str,
    pub bad_password: &'static str,
    pub lost_phone_title: &'static str,
    pub lost_phone_body: &'static str,
    pub enroll_heading: &'static str,
    pub enroll_intro: &'static str,
    pub manual_code: &'static str,
    pub server_url: &'static str,
    pub enroll_waiting: &'static str,
    pub enroll_registered: &'static str,
    pub enroll_verified: &'static str,
    pub enroll_failed: &'static str,
    pub enroll_expired: &'static str,
    pub enroll_cancelled: &'static str,
    pub new_code_button: &'static str,
    pub approve_heading: &'static str,
    pub approve_intro: &'static str,
    pub approve_waiting: &'static str,
    pub approve_approved: &'static str,
    pub approve_denied: &'static str,
    pub approve_wrong_number: &'static str,
    pub approve_user_verification: &'static str,
    pub approve_fraud: &'static str,
    pub approve_expired: &'static str,
    pub approve_superseded: &'static str,
    pub approve_cancelled: &'static str,
    pub retry_button: &'static str,
    pub use_code_button: &'static str,
    pub code_heading: &'static str,
    pub code_intro: &'static str,
    pub code_label: &'static str,
    pub code_button: &'static str,
    pub code_wrong: &'static str,
    pub code_used: &'static str,
    pub code_unavailable: &'static str,
    pub blocked: &'static str,
    pub rate_limited: &'static str,
    pub terms_heading: &'static str,
    pub terms_body: &'static [&'static str],
    pub accept_button: &'static str,
    pub welcome_heading: &'static str,
    pub welcome_body: &'static str,
    pub sign_out: &'static str,
    pub service_error: &'static str,
}

static EN: Texts = Texts {
    title: "Demo portal",
    sign_in_heading: "Sign in",
    email: "E-mail",
    password: "Password",
    sign_in_button: "Sign in",
    demo_users_hint: "Demo users: hanako@example.jp, taro@example.jp, alice@example.com (password: demo)",
    bad_password: "Wrong e-mail or password.",
    lost_phone_title: "Lost your phone?",
    lost_phone_body: "Ask your administrator to reset your sign-in methods. The lost phone loses its access at once \
        and can no longer approve anything. At your next sign-in you scan a new QR code with your new phone.",
    enroll_heading: "Set up the authenticator app",
    enroll_intro: "Scan this QR code with the authenticator app. If you cannot scan it, type the code and the server URL instead.",
    manual_code: "Code",
    server_url: "Server URL",
    enroll_waiting: "Waiting for the app to scan the code…",
    enroll_registered: "Enter this number in the app to confirm it:",
    enroll_verified: "The app is set up.",
    enroll_failed: "The number did not match, or the app denied. Get a new code and try again.",
    enroll_expired: "This QR code has expired. Get a new code to continue.",
    enroll_cancelled: "This setup was cancelled. Get a new code to start again.",
    new_code_button: "Get a new code",
    approve_heading: "Approve the sign-in in the app",
    approve_intro: "Open the authenticator app and enter this number:",
    approve_waiting: "Waiting for approval…",
    approve_approved: "Approved. Signing you in…",
    approve_denied: "The sign-in was denied in the app.",
    approve_wrong_number: "The number entered in the app did not match. Try again.",
    approve_user_verification: "Your organisation requires you to unlock the app (fingerprint, face or PIN) before approving. Try again.",
    approve_fraud: "You reported that this sign-in was not yours. Sign-ins are blocked for now and your administrator will be told.",
    approve_expired: "The request expired before it was approved.",
    approve_superseded: "A newer sign-in request replaced this one.",
    approve_cancelled: "This sign-in request was cancelled.",
    retry_button: "Try again",
    use_code_button: "Use a code instead",
    code_heading: "Sign in with a code from the app",
    code_intro: "If your phone has no connection, the authenticator app still shows a 6-digit code that changes every 30 seconds. Type the current one:",
    code_label: "Code from the app",
    code_button: "Sign in",
    code_wrong: "That code is not right. Type the code the app shows now.",
    code_used: "That code was already used. Wait for the next code in the app.",
    code_unavailable: "Codes cannot be used for your account. Try again with a push to your phone.",
    blocked: "Sign-in is blocked after a \"this wasn't me\" report. Ask your administrator to unblock your account.",
    rate_limited: "Too many sign-in requests. Wait a few minutes, then try again.",
    terms_heading: "Terms of use",
    terms_body: &[
        "Version 2026-01.",
        "This demo portal is for trying the sign-in flow. Do not enter real personal data.",
        "Sign-ins are approved with the authenticator app on your phone. Keep the phone locked, \
         and report any sign-in you did not start with \"this wasn't me\".",
    ],
    accept_button: "I accept",
    welcome_heading: "You are signed in",
    welcome_body: "Signed in as {email}.",
    sign_out: "Sign out",
    service_error: "The sign-in service is not available right now. Try again later.",
};

static JA: Texts = Texts {
    title: "デモポータル",
    sign_in_heading: "サインイン",
    email: "メールアドレス",
    password: "パスワード",
    sign_in_button: "サインイン",
    demo_users_hint: "デモ用ユーザー: hanako@example.jp、taro@example.jp、alice@example.com（パスワード: demo）",
    bad_password: "メールアドレスまたはパスワードが正しくありません。",
    lost_phone_title: "スマートフォンを紛失した場合",
    lost_phone_body: "管理者にサインイン方法のリセットを依頼してください。紛失した端末はすぐに無効になり、\
        何も承認できなくなります。次回のサインイン時に、新しいスマートフォンで新しいQRコードを読み取ってください。",
    enroll_heading: "認証アプリの設定",
    enroll_intro: "認証アプリでこのQRコードを読み取ってください。読み取れない場合は、コードとサーバーURLを入力してください。",
    manual_code: "コード",
    server_url: "サーバーURL",
    enroll_waiting: "アプリがQRコードを読み取るのを待っています…",
    enroll_registered: "確認のため、この番号をアプリに入力してください:",
    enroll_verified: "アプリの設定が完了しました。",
    enroll_failed: "番号が一致しないか、アプリで拒否されました。新しいコードでもう一度お試しください。",
    enroll_expired: "このQRコードは有効期限が切れました。新しいコードを取得してください。",
    enroll_cancelled: "この設定は取り消されました。新しいコードで最初からやり直してください。",
    new_code_button: "新しいコードを取得",
    approve_heading: "アプリでサインインを承認してください",
    approve_intro: "認証アプリを開いて、この番号を入力してください:",
    approve_waiting: "承認を待っています…",
    approve_approved: "承認されました。サインインしています…",
    approve_denied: "アプリでサインインが拒否されました。",
    approve_wrong_number: "アプリに入力された番号が一致しませんでした。もう一度お試しください。",
    approve_user_verification: "承認の前にアプリのロック解除（指紋・顔認証・PIN）が必要です。もう一度お試しください。",
    approve_fraud: "このサインインに心当たりがないと報告されました。サインインは一時的にブロックされ、管理者に通知されます。",
    approve_expired: "承認されないまま有効期限が切れました。",
    approve_superseded: "新しいサインイン要求に置き換えられました。",
    approve_cancelled: "このサインイン要求は取り消されました。",
    retry_button: "もう一度試す",
    use_code_button: "代わりにコードを使う",
    code_heading: "アプリのコードでサインイン",
    code_intro: "スマートフォンが通信できない場合でも、認証アプリには30秒ごとに変わる6桁のコードが表示されます。現在のコードを入力してください:",
    code_label: "アプリのコード",
    code_button: "サインイン",
    code_wrong: "コードが正しくありません。アプリに現在表示されているコードを入力してください。",
    code_used: "このコードはすでに使用されています。アプリに次のコードが表示されるまでお待ちください。",
    code_unavailable: "このアカウントではコードを使用できません。スマートフォンへの通知でもう一度お試しください。",
    blocked: "「心当たりがない」と報告されたため、サインインがブロックされています。管理者にブロックの解除を依頼してください。",
    rate_limited: "サインイン要求が多すぎます。数分待ってからもう一度お試しください。",
    terms_heading: "利用規約",
    terms_body: &[
        "バージョン 2026-01。",
        "このデモポータルはサインインの流れを試すためのものです。実際の個人情報は入力しないでください。",
        "サインインはスマートフォンの認証アプリで承認します。端末はロックしておき、\
         心当たりのないサインインは「心当たりがない」で報告してください。",
    ],
    accept_button: "同意する",
    welcome_heading: "サインインしました",
    welcome_body: "{email} としてサインインしています。",
    sign_out: "サインアウト",
    service_error: "現在サインインサービスを利用できません。しばらくしてからもう一度お試しください。",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(header: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_LANGUAGE, header.parse().unwrap());
        Lang::from_headers(&headers)
    }

    #[test]
    fn the_preferred_language_wins() {
        assert_eq!(lang("ja-JP,ja;q=0.9,en;q=0.8"), Lang::Ja);
        assert_eq!(lang("en-US,en;q=0.9"), Lang::En);
        assert_eq!(lang("fr-FR, en;q=0.5, ja;q=0.7"), Lang::Ja);
        assert_eq!(lang("fr-FR, en;q=0.5"), Lang::En);
        assert_eq!(lang("en;q=0, ja;q=0.1"), Lang::Ja);
    }

    #[test]
    fn japanese_when_neither_is_named() {
        assert_eq!(lang("fr-FR"), Lang::Ja);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::Ja);
    }
}

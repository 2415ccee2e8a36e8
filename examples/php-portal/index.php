<?php
// The example portal's pages (run: php -S 127.0.0.1:8000 index.php). A real
// portal checks the password first; here the user name alone stands for a
// signed-in first factor.

declare(strict_types=1);
require __DIR__ . '/mfa.php';

session_start();
$route = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$post = $_SERVER['REQUEST_METHOD'] === 'POST';

try {
    match (true) {
        $route === '/' => home(),
        $route === '/enroll' && $post => begin_enrollment(),
        $route === '/enroll/status' => enrollment_status(),
        $route === '/sign-in' && $post => begin_sign_in(),
        $route === '/sign-in/status' => sign_in_status(),
        default => not_found(),
    };
} catch (MfaError $e) {
    http_response_code(502);
    page('Something went wrong', '<p id="error" data-reason="' . h($e->reason()) . '">'
        . h($e->error['message'] ?? '') . '</p>');
}

function home(): void
{
    page('Welcome', <<<HTML
        <form method="post" action="/enroll"><fieldset><legend>Set up your phone</legend>
        <label>User <input name="user_id" required></label>
        <label>E-mail <input name="email" type="email" required></label>
        <button>Show the QR code</button></fieldset></form>
        <form method="post" action="/sign-in"><fieldset><legend>Sign in</legend>
        <label>User <input name="user_id" required></label>
        <button>Sign in</button></fieldset></form>
        HTML);
}

function begin_enrollment(): void
{
    $begun = mfa_call('POST', '/v1/enrollments', [
        'user_id' => (string)($_POST['user_id'] ?? ''),
        'email' => (string)($_POST['email'] ?? ''),
    ]);
    $_SESSION['enrollment_id'] = $begun['enrollment_id'];
    $qr = 'data:image/svg+xml;base64,' . base64_encode($begun['qr_svg']);
    page('Scan this QR code', '<p>Scan it with the authenticator app, then continue.</p>'
        . '<img id="qr" width="264" height="264" alt="QR code" src="' . h($qr) . '">'
        . '<p>Cannot scan? Type the code <code id="manual-code">' . h($begun['manual_code'])
        . '</code> and the server <code id="server-url">' . h($begun['server_url']) . '</code>.</p>'
        . '<p><a id="next" href="/enroll/status">I have scanned it</a></p>');
}

function enrollment_status(): void
{
    $id = $_SESSION['enrollment_id'] ?? null;
    if ($id === null) {
        not_found();
        return;
    }
    // Wait while the app has not scanned yet, or, once the number is shown,
    // while the person has not typed it.
    $shown = isset($_GET['shown']);
    $waitingFor = $shown ? 'ENROLLMENT_STATE_DEVICE_REGISTERED' : 'ENROLLMENT_STATE_WAITING_FOR_SCAN';
    $enrollment = mfa_wait('/v1/enrollments/' . rawurlencode($id), $waitingFor);
    $state = $enrollment['state'];
    match ($state) {
        'ENROLLMENT_STATE_WAITING_FOR_SCAN' => page('Waiting for the app',
            '<p id="state" data-state="' . h($state) . '">Not scanned yet.</p>'
            . '<p><a id="next" href="/enroll/status">Check again</a></p>'),
        'ENROLLMENT_STATE_DEVICE_REGISTERED' => page('Type this number in the app',
            '<p id="number">' . h($enrollment['verification_number']) . '</p>'
            . '<p id="state" data-state="' . h($state) . '">Then continue.</p>'
            . '<p><a id="next" href="/enroll/status?shown=1">I have typed it</a></p>'),
        'ENROLLMENT_STATE_VERIFIED' => page('Your phone is set up',
            '<p id="state" data-state="' . h($state) . '">You will approve sign-ins with it.</p>'),
        default => page('The set-up did not finish',
            '<p id="state" data-state="' . h($state) . '">Start again to get a new QR code.</p>'),
    };
}

function begin_sign_in(): void
{
    $user = (string)($_POST['user_id'] ?? '');
    $challenge = mfa_call('POST', '/v1/challenges', [
        'user_id' => $user,
        'context' => [
            'application_name' => 'Example PHP portal',
            'client_ip' => (string)($_SERVER['REMOTE_ADDR'] ?? ''),
        ],
    ]);
    // The challenge is bound to this session: the outcome page signs in
    // whoever holds the session, never whoever names a challenge id.
    $_SESSION['challenge_id'] = $challenge['challenge_id'];
    $_SESSION['pending_user'] = $user;
    page('Approve on your phone', '<p>Open the app and type this number:</p>'
        . '<p id="number">' . h($challenge['number']) . '</p>'
        . '<p><a id="next" href="/sign-in/status">Continue</a></p>');
}

function sign_in_status(): void
{
    $id = $_SESSION['challenge_id'] ?? null;
    if ($id === null) {
        not_found();
        return;
    }
    $challenge = mfa_wait('/v1/challenges/' . rawurlencode($id), 'CHALLENGE_STATE_PENDING');
    $state = $challenge['state'];
    if ($state === 'CHALLENGE_STATE_PENDING') {
        page('Still waiting', '<p id="state" data-state="' . h($state) . '">Approve on your phone.</p>'
            . '<p><a id="next" href="/sign-in/status">Check again</a></p>');
        return;
    }
    unset($_SESSION['challenge_id']);
    if ($state === 'CHALLENGE_STATE_APPROVED') {
        session_regenerate_id(true);
        $_SESSION['user'] = $_SESSION['pending_user'];
        page('Signed in', '<p id="state" data-state="' . h($state) . '">Welcome, <span id="user">'
            . h($_SESSION['user']) . '</span>.</p>');
        return;
    }
    page('Not signed in', '<p id="state" data-state="' . h($state) . '" data-deny-reason="'
        . h($challenge['deny_reason']) . '">The sign-in was not approved.</p>');
}

function not_found(): void
{
    http_response_code(404);
    page('Not found', '<p>No such page.</p>');
}

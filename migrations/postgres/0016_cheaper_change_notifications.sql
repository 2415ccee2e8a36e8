-- The change notifications of 0003, without turning each written row into
-- JSON to read one column of it: one function per id column. The payloads
-- are unchanged (`challenge:<id>`, `enrollment:<id>`).

CREATE FUNCTION mfa_notify_change_by_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mfa_changes', TG_ARGV[0] || ':' || NEW.id);
    RETURN NULL;
END
$$;

CREATE FUNCTION mfa_notify_change_by_challenge_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mfa_changes', 'challenge:' || NEW.challenge_id);
    RETURN NULL;
END
$$;

DROP TRIGGER challenges_notify ON challenges;
DROP TRIGGER enrollments_notify ON enrollments;
DROP TRIGGER push_deliveries_notify ON push_deliveries;
DROP FUNCTION mfa_notify_change();

CREATE TRIGGER challenges_notify AFTER INSERT OR UPDATE ON challenges
    FOR EACH ROW EXECUTE FUNCTION mfa_notify_change_by_id('challenge');
CREATE TRIGGER enrollments_notify AFTER INSERT OR UPDATE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION mfa_notify_change_by_id('enrollment');
CREATE TRIGGER push_deliveries_notify AFTER INSERT OR UPDATE ON push_deliveries
    FOR EACH ROW EXECUTE FUNCTION mfa_notify_change_by_challenge_id();

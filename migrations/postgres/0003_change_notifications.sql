-- Every replica's watch streams learn of every change: each write to a
-- challenge, an enrollment or a push delivery sends a notification on the
-- `mfa_changes` channel when its transaction commits. The payload names what
-- to re-read: `challenge:<id>` or `enrollment:<id>` (a push delivery is part
-- of its challenge). Trigger arguments: the kind, and the column holding its id.

CREATE FUNCTION mfa_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mfa_changes', TG_ARGV[0] || ':' || (to_jsonb(NEW) ->> TG_ARGV[1]));
    RETURN NULL;
END
$$;

CREATE TRIGGER challenges_notify AFTER INSERT OR UPDATE ON challenges
    FOR EACH ROW EXECUTE FUNCTION mfa_notify_change('challenge', 'id');
CREATE TRIGGER enrollments_notify AFTER INSERT OR UPDATE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION mfa_notify_change('enrollment', 'id');
CREATE TRIGGER push_deliveries_notify AFTER INSERT OR UPDATE ON push_deliveries
    FOR EACH ROW EXECUTE FUNCTION mfa_notify_change('challenge', 'challenge_id');

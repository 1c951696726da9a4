-- The event catalog's body shapes (CONTRACT §6), checked by callbackd_enqueue() too, and the
-- Idempotency-Key store of POST /v1/notifications.
--
-- The shapes are the same data as src/model/catalog.rs: per section a list of `Name:kind`
-- specs (a trailing `?`: the key may be absent or null), walked by callbackd_check_section().
-- A test compares both lists section by section and runs the same broken bodies through the
-- API and through this function, expecting the same field. Errors: SQLSTATE CB001, COLUMN =
-- the JSON path of the field (`body.TipoEvento`, `body.Parcelas[0].VlrParcela`).

CREATE FUNCTION callbackd_body_fields(section text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE section
        WHEN 'schedule' THEN ARRAY[
            'TipoEvento:integer', 'NomeEvento:string', 'NroProposta:integer', 'DtEvento:date',
            'AcrescimoAbatimento:object?', 'LancamentoParcela:object?',
            'ProrrogacaoVencimento:object?', 'GeracaoBoleto:object?', 'CancelamentoBoleto:object?']
        WHEN 'schedule.AcrescimoAbatimento' THEN ARRAY[
            'NroParcela:integer', 'VlrSaldo:number', 'VlrAcrescimo:number', 'VlrAbatimento:number',
            'VlrSaldoAtual:number']
        WHEN 'schedule.LancamentoParcela' THEN ARRAY[
            'NroParcela:integer', 'VlrOriginalParcela:number', 'VlrSaldo:number',
            'ParcelaLiquidada:boolean', 'VlrEncargos:number', 'VlrAbatimento:number',
            'VlrPagamento:number', 'VlrDesconto:number', 'VlrSaldoAtual:number',
            'VlrExcedente:number', 'DtVencimento:date', 'DtVencimentoAtual:date', 'Boleto:object?']
        WHEN 'schedule.LancamentoParcela.Boleto' THEN ARRAY[
            'NroBoleto:integer?', 'Liquidacao:boolean?']
        WHEN 'schedule.ProrrogacaoVencimento' THEN ARRAY[
            'NroParcela:integer', 'DtVencimentoAnterior:date', 'DtVencimentoAtual:date']
        WHEN 'schedule.GeracaoBoleto' THEN ARRAY[
            'CodigoBoleto:string', 'NroBoleto:integer', 'VlrBoleto:number', 'DtVencimento:date',
            'Liquidacao:boolean?']
        WHEN 'schedule.CancelamentoBoleto' THEN ARRAY[
            'CodigoBoleto:string', 'NroBoleto:integer', 'Parcelas:integer[]']
        WHEN 'installments' THEN ARRAY[
            'QtdeParcelas:integer', 'VlrTotalDivida:number?', 'DtFinanciado:date?',
            'Credito:object?', 'Parcelas:object[]']
        WHEN 'installments.Credito' THEN ARRAY['DtCredito:date?', 'Conta:object?']
        WHEN 'installments.Credito.Conta' THEN ARRAY[
            'CodigoBanco:code?', 'NomeBanco:string?', 'Agencia:code?', 'Conta:code?',
            'ContaDigito:code?']
        WHEN 'installments.Parcelas' THEN ARRAY[
            'NroParcela:integer', 'VlrParcela:number', 'VlrPrincipal:number?',
            'VlrDespesas:number?', 'VlrSaldoDevedor:number?', 'DtVencimento:date']
        WHEN 'banking' THEN ARRAY['header:object', 'body:object']
        ELSE ARRAY[]::text[]
    END;
$$;

-- TipoEvento → NomeEvento of seed 001 and the object that type carries.
CREATE FUNCTION callbackd_schedule_types()
RETURNS TABLE (tipo_evento integer, nome_evento text, object_key text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES (1, 'Cancelamento de Agenda', NULL),
           (2, 'Acréscimo/Abatimento', 'AcrescimoAbatimento'),
           (3, 'Lançamento na Parcela', 'LancamentoParcela'),
           (4, 'Prorrogação de Vencimento', 'ProrrogacaoVencimento'),
           (5, 'Geração de Boleto', 'GeracaoBoleto'),
           (6, 'Cancelamento de Boleto', 'CancelamentoBoleto');
$$;

-- The human name of an event, as the API shows it (`event_name`): the NomeEvento of a
-- schedule event's TipoEvento, the seed-003 description of a banking event, NULL for
-- proposal.status (whose status_name says it).
CREATE FUNCTION callbackd_event_name(event_type text, body json) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE event_type
        WHEN 'schedule.event' THEN (
            SELECT t.nome_evento FROM callbackd_schedule_types() t
            WHERE json_typeof(body) = 'object'
              AND t.tipo_evento::text = btrim((body -> 'TipoEvento')::text))
        WHEN 'banking.transfer.sent' THEN 'Envio de transferência entre contas'
        WHEN 'banking.transfer.received' THEN 'Recebimento de transferência entre contas'
        WHEN 'banking.ted.sent' THEN 'Envio de TED para outra instituição'
        WHEN 'banking.ted.received' THEN 'Recebimento de TED de outra instituição'
        WHEN 'banking.ted.returned' THEN 'Devolução de TED rejeitada pela instituição de destino'
        WHEN 'banking.boleto.paid_other_bank' THEN 'Pagamento de boleto de outra instituição'
        WHEN 'banking.boleto.registered' THEN 'Registro de boleto'
        WHEN 'banking.boleto.changed' THEN 'Confirmação de alteração em boleto'
        WHEN 'banking.boleto.write_off' THEN 'Confirmação de solicitação de baixa de boleto'
        WHEN 'banking.boleto.payment_confirmed' THEN 'Confirmação de pagamento de boleto'
    END;
$$;

-- YYYY-MM-DD (optionally followed by T or a space and hh:mm…) or DD-MM-YYYY; the date must
-- exist. No exception block: the check costs no subtransaction.
CREATE FUNCTION callbackd_is_date(s text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m text[];
    y integer;
    mo integer;
    d integer;
BEGIN
    m := regexp_match(s, '^([0-9]{4})-([0-9]{2})-([0-9]{2})([T ][0-9]{2}:[0-9]{2}[0-9:.+Z-]*)?$');
    IF m IS NOT NULL THEN
        y := m[1]::integer; mo := m[2]::integer; d := m[3]::integer;
    ELSE
        m := regexp_match(s, '^([0-9]{2})-([0-9]{2})-([0-9]{4})$');
        IF m IS NULL THEN
            RETURN false;
        END IF;
        y := m[3]::integer; mo := m[2]::integer; d := m[1]::integer;
    END IF;
    IF y < 1 OR mo NOT BETWEEN 1 AND 12 OR d NOT BETWEEN 1 AND 31 THEN
        RETURN false;
    END IF;
    RETURN extract(day FROM make_date(y, mo, 1) + (d - 1)) = d;
END;
$$;

CREATE FUNCTION callbackd_is_integer(v json) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT json_typeof(v) = 'number' AND btrim(v::text) ~ '^-?[0-9]+$';
$$;

CREATE FUNCTION callbackd_describe(kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind
        WHEN 'integer' THEN 'an integer'
        WHEN 'number' THEN 'a number'
        WHEN 'boolean' THEN 'true or false'
        WHEN 'string' THEN 'a non-empty string'
        WHEN 'code' THEN 'a string or an integer'
        WHEN 'date' THEN 'a date (YYYY-MM-DD or DD-MM-YYYY)'
        WHEN 'object' THEN 'an object'
        WHEN 'integer[]' THEN 'an array of integers'
        WHEN 'object[]' THEN 'an array of objects'
        ELSE 'valid'
    END;
$$;

-- Checks the object `obj` (found at `path`) against `section`; raises CB001 on the first
-- field that breaks it.
CREATE FUNCTION callbackd_check_section(path text, obj json, section text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    spec text;
    name text;
    kind text;
    optional boolean;
    field text;
    v json;
    t text;
    ok boolean;
    i integer;
    item json;
BEGIN
    FOREACH spec IN ARRAY callbackd_body_fields(section) LOOP
        name := split_part(spec, ':', 1);
        kind := split_part(spec, ':', 2);
        optional := right(kind, 1) = '?';
        IF optional THEN
            kind := left(kind, -1);
        END IF;
        field := path || '.' || name;
        v := obj -> name;
        t := json_typeof(v);
        IF t IS NULL OR t = 'null' THEN
            IF optional THEN
                CONTINUE;
            END IF;
            RAISE EXCEPTION '%: required: %', field, callbackd_describe(kind)
                USING ERRCODE = 'CB001', COLUMN = field;
        END IF;
        ok := CASE kind
            WHEN 'integer' THEN callbackd_is_integer(v)
            WHEN 'number' THEN t = 'number'
            WHEN 'boolean' THEN t = 'boolean'
            WHEN 'string' THEN t = 'string' AND (v #>> '{}') <> ''
            WHEN 'code' THEN t = 'string' OR callbackd_is_integer(v)
            WHEN 'date' THEN t = 'string' AND callbackd_is_date(v #>> '{}')
            WHEN 'object' THEN t = 'object'
            WHEN 'integer[]' THEN t = 'array'
            WHEN 'object[]' THEN t = 'array'
            ELSE true
        END;
        IF NOT ok THEN
            RAISE EXCEPTION '%: must be %', field,
                callbackd_describe(kind) || CASE WHEN optional THEN ' or null' ELSE '' END
                USING ERRCODE = 'CB001', COLUMN = field;
        END IF;
        IF kind = 'object' THEN
            PERFORM callbackd_check_section(field, v, section || '.' || name);
        ELSIF kind = 'integer[]' THEN
            i := 0;
            FOR item IN SELECT value FROM json_array_elements(v) LOOP
                IF NOT callbackd_is_integer(item) THEN
                    RAISE EXCEPTION '%[%]: must be an integer', field, i
                        USING ERRCODE = 'CB001', COLUMN = field || '[' || i || ']';
                END IF;
                i := i + 1;
            END LOOP;
        ELSIF kind = 'object[]' THEN
            i := 0;
            FOR item IN SELECT value FROM json_array_elements(v) LOOP
                IF json_typeof(item) <> 'object' THEN
                    RAISE EXCEPTION '%[%]: must be an object', field, i
                        USING ERRCODE = 'CB001', COLUMN = field || '[' || i || ']';
                END IF;
                PERFORM callbackd_check_section(field || '[' || i || ']', item, section || '.' || name);
                i := i + 1;
            END LOOP;
        END IF;
    END LOOP;
END;
$$;

-- The body rules of CONTRACT §6 for one event type (body already known to be an object or
-- NULL).
CREATE FUNCTION callbackd_validate_body(event_type text, body json) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    tipo text;
    wanted text;
    key text;
    present boolean;
BEGIN
    IF body IS NULL OR json_typeof(body) <> 'object' THEN
        RETURN;
    END IF;
    IF event_type = 'proposal.status' THEN
        IF body -> 'QtdeParcelas' IS NOT NULL OR body -> 'Parcelas' IS NOT NULL THEN
            PERFORM callbackd_check_section('body', body, 'installments');
        END IF;
    ELSIF event_type = 'schedule.event' THEN
        PERFORM callbackd_check_section('body', body, 'schedule');
        tipo := btrim((body -> 'TipoEvento')::text);
        IF NOT EXISTS (SELECT 1 FROM callbackd_schedule_types() t WHERE t.tipo_evento::text = tipo) THEN
            RAISE EXCEPTION 'body.TipoEvento: unknown TipoEvento %: expected 1 to 6', tipo
                USING ERRCODE = 'CB001', COLUMN = 'body.TipoEvento';
        END IF;
        SELECT t.object_key INTO wanted FROM callbackd_schedule_types() t
        WHERE t.tipo_evento::text = tipo;
        FOREACH key IN ARRAY ARRAY['AcrescimoAbatimento', 'LancamentoParcela',
                                   'ProrrogacaoVencimento', 'GeracaoBoleto',
                                   'CancelamentoBoleto'] LOOP
            present := coalesce(json_typeof(body -> key), 'null') <> 'null';
            IF key = wanted AND NOT present THEN
                RAISE EXCEPTION 'body.%: required for TipoEvento %', key, tipo
                    USING ERRCODE = 'CB001', COLUMN = 'body.' || key;
            END IF;
            IF key IS DISTINCT FROM wanted AND present THEN
                RAISE EXCEPTION 'body.%: must be null for TipoEvento %', key, tipo
                    USING ERRCODE = 'CB001', COLUMN = 'body.' || key;
            END IF;
        END LOOP;
    ELSE
        PERFORM callbackd_check_section('body', body, 'banking');
    END IF;
END;
$$;

-- Same signature and behaviour as in 0002, plus the body rules above.
CREATE OR REPLACE FUNCTION callbackd_enqueue(
    partner_id   uuid,
    environment  text,
    event_type   text,
    proposal     uuid    DEFAULT NULL,
    status       integer DEFAULT NULL,
    identifier   text    DEFAULT NULL,
    body         json    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    notification_id uuid;
BEGIN
    IF callbackd_enqueue.partner_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM partners p
        WHERE p.id = callbackd_enqueue.partner_id AND p.deleted_at IS NULL
    ) THEN
        RAISE EXCEPTION 'unknown partner_id: %', callbackd_enqueue.partner_id
            USING ERRCODE = 'CB001', COLUMN = 'partner_id';
    END IF;
    IF callbackd_enqueue.environment IS NULL
       OR callbackd_enqueue.environment NOT IN ('homologation', 'production') THEN
        RAISE EXCEPTION 'environment must be homologation or production, got %',
            coalesce(callbackd_enqueue.environment, 'NULL')
            USING ERRCODE = 'CB001', COLUMN = 'environment';
    END IF;
    IF callbackd_enqueue.event_type IS NULL
       OR NOT (callbackd_enqueue.event_type = ANY (callbackd_event_types())) THEN
        RAISE EXCEPTION 'unknown event_type: %', coalesce(callbackd_enqueue.event_type, 'NULL')
            USING ERRCODE = 'CB001', COLUMN = 'event_type';
    END IF;
    IF callbackd_enqueue.body IS NOT NULL AND json_typeof(callbackd_enqueue.body) <> 'object' THEN
        RAISE EXCEPTION 'body must be a JSON object'
            USING ERRCODE = 'CB001', COLUMN = 'body';
    END IF;

    IF callbackd_enqueue.event_type = 'proposal.status' THEN
        IF callbackd_enqueue.proposal IS NULL THEN
            RAISE EXCEPTION 'proposal is required for proposal.status'
                USING ERRCODE = 'CB001', COLUMN = 'proposal';
        END IF;
        IF callbackd_enqueue.status IS NULL OR callbackd_enqueue.status NOT BETWEEN 0 AND 11 THEN
            RAISE EXCEPTION 'status must be a proposal status id from 0 to 11, got %',
                coalesce(callbackd_enqueue.status::text, 'NULL')
                USING ERRCODE = 'CB001', COLUMN = 'status';
        END IF;
        IF length(callbackd_enqueue.identifier) > 200 THEN
            RAISE EXCEPTION 'identifier is longer than 200 characters'
                USING ERRCODE = 'CB001', COLUMN = 'identifier';
        END IF;
    ELSE
        IF callbackd_enqueue.body IS NULL THEN
            RAISE EXCEPTION 'body is required for %', callbackd_enqueue.event_type
                USING ERRCODE = 'CB001', COLUMN = 'body';
        END IF;
        IF callbackd_enqueue.proposal IS NOT NULL OR callbackd_enqueue.status IS NOT NULL
           OR callbackd_enqueue.identifier IS NOT NULL THEN
            RAISE EXCEPTION 'proposal, status and identifier belong to proposal.status only'
                USING ERRCODE = 'CB001', COLUMN = 'event_type';
        END IF;
    END IF;

    PERFORM callbackd_validate_body(callbackd_enqueue.event_type, callbackd_enqueue.body);

    INSERT INTO notifications (partner_id, environment, event_type, proposal, status, identifier, body)
    VALUES (callbackd_enqueue.partner_id, callbackd_enqueue.environment, callbackd_enqueue.event_type,
            callbackd_enqueue.proposal, callbackd_enqueue.status, callbackd_enqueue.identifier,
            callbackd_enqueue.body)
    RETURNING id INTO notification_id;

    INSERT INTO deliveries (notification_id, endpoint_id, partner_id, environment, event_type, proposal)
    SELECT notification_id, e.id, e.partner_id, e.environment, callbackd_enqueue.event_type,
           callbackd_enqueue.proposal
    FROM endpoints e
    WHERE e.partner_id = callbackd_enqueue.partner_id
      AND e.environment = callbackd_enqueue.environment
      AND e.deleted_at IS NULL
      AND e.enabled
      AND callbackd_enqueue.event_type = ANY (e.event_types)
    ORDER BY e.id;

    IF FOUND THEN
        PERFORM pg_notify('callbackd_due', '');
    END IF;
    RETURN notification_id;
END;
$$;

COMMENT ON FUNCTION callbackd_enqueue(uuid, text, text, uuid, integer, text, json) IS
'Enqueues one callback inside the caller''s transaction: validates like POST /v1/notifications '
'(SQLSTATE CB001, COLUMN = the field), stores the notification, fans out one delivery per '
'matching enabled endpoint and wakes the workers at commit. Returns the notification id. '
'Example: SELECT callbackd_enqueue(partner_id => ''…'', environment => ''production'', '
'event_type => ''proposal.status'', proposal => ''…'', status => 9, identifier => ''OP-1'');';

-- Idempotency-Key of POST /v1/notifications, per partner. The first request inserts the row
-- and enqueues in the same transaction; a racing repeat blocks on the primary key until the
-- first commits (or rolls back) and then reads the stored answer. Keys do not expire.
CREATE TABLE idempotency_keys (
    partner_id       uuid NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 of the request's canonical text (NewNotification::fingerprint).
    request_hash     bytea NOT NULL,
    notification_id  uuid REFERENCES notifications (id),
    -- The 202 answer, kept as text so that a repeat gets it byte for byte.
    response         json,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, key)
);

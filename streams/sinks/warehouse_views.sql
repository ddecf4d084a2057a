-- The views a controller opens first; docs/warehouse.md gives each one's grain, keys and currency
-- rule. The one currency rule: no money column ever adds amounts of two currencies. Each money
-- column is in the currency its row names (an engagement's figures in the engagement's currency);
-- what is in another currency is reported apart, never converted (the firm's systems hold no
-- exchange rates). Columns are only ever appended to a view: a warehouse made by an earlier
-- version is replaced in place.

-- Margin by engagement, in the engagement's currency: billed and ready revenue against the
-- delivery cost in that currency. Cost in other currencies is left out of cost and margin, flagged
-- and named here, and given in dw.cost_by_currency.
CREATE OR REPLACE VIEW dw.margin_by_engagement AS
SELECT contract_number, client_name, commercial_model, currency, contract_value, billed_revenue, ready_revenue, cost,
       billed_revenue + ready_revenue - cost AS margin,
       round((billed_revenue + ready_revenue - cost) / nullif(billed_revenue + ready_revenue, 0) * 100, 1) AS margin_pct,
       cost_in_other_currencies, other_cost_currencies
FROM (SELECT c.contract_number, c.client_name, c.commercial_model, c.currency, c.contract_value,
             coalesce(e.billed, 0) AS billed_revenue, coalesce(e.ready, 0) AS ready_revenue, coalesce(pc.cost, 0) AS cost,
             other.currencies IS NOT NULL AS cost_in_other_currencies, other.currencies AS other_cost_currencies
      FROM dw.contract c
      LEFT JOIN (SELECT contract_number, currency,
                        sum(amount) FILTER (WHERE status = 'billed') AS billed,
                        sum(amount) FILTER (WHERE status = 'ready') AS ready
                 FROM dw.billing_event GROUP BY contract_number, currency) e
             ON e.contract_number = c.contract_number AND e.currency = c.currency
      LEFT JOIN (SELECT contract_number, cost_currency, sum(cost_amount) AS cost
                 FROM dw.project_cost WHERE status = 'posted' GROUP BY contract_number, cost_currency) pc
             ON pc.contract_number = c.contract_number AND pc.cost_currency = c.currency
      LEFT JOIN LATERAL (SELECT string_agg(DISTINCT x.cost_currency, ',' ORDER BY x.cost_currency) AS currencies
                         FROM dw.project_cost x
                         WHERE x.contract_number = c.contract_number AND x.status = 'posted'
                           AND x.cost_currency <> c.currency) other ON true) figures;

-- Delivery cost by engagement and cost currency (posted cost rows), every currency on its own row.
CREATE OR REPLACE VIEW dw.cost_by_currency AS
SELECT contract_number, cost_currency, sum(cost_amount) AS cost, sum(hours) AS hours
FROM dw.project_cost
WHERE status = 'posted'
GROUP BY contract_number, cost_currency;

-- Backlog by engagement: contract value not yet billed, in the engagement's currency. billed is
-- the sum of the engagement's billed events, reversal events (negative) among them. A cancelled or
-- closed engagement bills nothing more than what is owed already: its backlog is its events ready
-- to invoice (contract_value less billed would count a time-and-materials not-to-exceed that will
-- never be used).
CREATE OR REPLACE VIEW dw.backlog_by_engagement AS
SELECT c.contract_number, c.currency, c.contract_value, coalesce(b.billed, 0) AS billed,
       CASE WHEN c.status = 'active' THEN c.contract_value - coalesce(b.billed, 0) ELSE coalesce(b.ready, 0) END AS backlog,
       c.status
FROM dw.contract c
LEFT JOIN (SELECT contract_number, currency,
                  sum(amount) FILTER (WHERE status = 'billed') AS billed,
                  sum(amount) FILTER (WHERE status = 'ready') AS ready
           FROM dw.billing_event
           GROUP BY contract_number, currency) b
       ON b.contract_number = c.contract_number AND b.currency = c.currency;

-- Billing forecast by engagement and month (the month's first day), in the engagement's currency.
-- kind 'schedule': schedule items planned or eligible (not billed, not cancelled), by the month of
-- their planned date. kind 'run_rate': a time-and-materials engagement still active bills, in
-- each month from the current one to its end date's, what its time and expense events (ready or
-- billed, reversals included) came to a month on average over the last three full months.
CREATE OR REPLACE VIEW dw.billing_forecast AS
SELECT contract_number, currency, date_trunc('month', planned_date)::date AS month, sum(amount) AS amount,
       'schedule'::text AS kind
FROM dw.schedule_item
WHERE status IN ('planned', 'eligible')
GROUP BY contract_number, currency, date_trunc('month', planned_date)
UNION ALL
SELECT c.contract_number, c.currency, m.month::date, r.run_rate, 'run_rate'
FROM dw.contract c
JOIN (SELECT contract_number, currency, round(sum(amount) / 3, 2) AS run_rate
      FROM dw.billing_event
      WHERE event_type IN ('time', 'expense') AND status IN ('ready', 'billed')
        AND service_date >= (date_trunc('month', current_date) - interval '3 months')::date
        AND service_date < date_trunc('month', current_date)::date
      GROUP BY contract_number, currency) r
  ON r.contract_number = c.contract_number AND r.currency = c.currency
CROSS JOIN LATERAL generate_series(date_trunc('month', current_date), date_trunc('month', c.end_date),
                                   interval '1 month') AS m(month)
WHERE c.commercial_model = 'time_and_materials' AND c.status = 'active';

-- Receivables aging by currency, as of today: the open amount (gross - paid) of issued, disputed
-- and partly paid invoices, by days past their due date.
CREATE OR REPLACE VIEW dw.receivables_aging AS
SELECT r.currency, b.bucket, sum(r.gross_amount - r.paid_amount) AS amount, count(*) AS invoices,
       min(b.bucket_order) AS bucket_order
FROM dw.receivable r
JOIN (VALUES (1, 'current', -2147483648, 0), (2, '1-30', 1, 30), (3, '31-60', 31, 60), (4, '61-90', 61, 90),
             (5, '90+', 91, 2147483647)) AS b (bucket_order, bucket, from_days, to_days)
  ON current_date - r.due_date BETWEEN b.from_days AND b.to_days
WHERE r.status IN ('issued', 'disputed', 'partially_paid')
GROUP BY r.currency, b.bucket;

-- Days sales outstanding by currency, as of today: open receivable / gross invoiced in the last 90
-- days (invoices neither draft nor void, dated in the 90 days up to today) × 90. NULL when nothing
-- was invoiced in that currency in the last 90 days.
CREATE OR REPLACE VIEW dw.dso_by_currency AS
SELECT currency, open_receivable, invoiced_last_90_days,
       round(open_receivable / nullif(invoiced_last_90_days, 0) * 90, 1) AS dso_days
FROM (SELECT currency,
             coalesce(sum(gross_amount - paid_amount) FILTER (WHERE status IN ('issued', 'disputed', 'partially_paid')), 0)
               AS open_receivable,
             coalesce(sum(gross_amount) FILTER (WHERE status NOT IN ('draft', 'void')
                                                  AND invoice_date > current_date - 90 AND invoice_date <= current_date), 0)
               AS invoiced_last_90_days
      FROM dw.receivable
      GROUP BY currency) totals;

-- Dispute rate by month of invoice date: invoices (neither draft nor void) disputed now or with a
-- dispute reason on record, out of all.
CREATE OR REPLACE VIEW dw.dispute_rate_by_month AS
SELECT month, invoices, disputed, round(disputed::numeric / invoices * 100, 1) AS dispute_rate_pct
FROM (SELECT date_trunc('month', invoice_date)::date AS month, count(*) AS invoices,
             count(*) FILTER (WHERE status = 'disputed' OR dispute_reason IS NOT NULL) AS disputed
      FROM dw.receivable
      WHERE status NOT IN ('draft', 'void')
      GROUP BY date_trunc('month', invoice_date)) counts;

-- Billing cycle time by month of invoice date and commercial model: days from a billed event's
-- start (a time entry's approval, an expense's approval as capture saw it, a schedule item's
-- eligibility) to the date of the invoice that billed it. Reversal events are not counted.
CREATE OR REPLACE VIEW dw.billing_cycle_time AS
WITH started AS (
  SELECT e.billing_event_id, e.contract_number, e.invoice_number,
         coalesce(t.approved_at, x.status_since, s.eligible_at) AS started_at
  FROM dw.billing_event e
  LEFT JOIN dw.time_entry t ON e.event_type = 'time' AND e.source_ref = 'psa.timesheet_entry:' || t.id
  LEFT JOIN dw.expense_item x ON e.event_type = 'expense' AND e.source_ref = 'psa.expense_line:' || x.id
  LEFT JOIN dw.schedule_item s
         ON e.event_type IN ('milestone', 'fixed_fee', 'retainer') AND s.contract_number = e.contract_number
        AND e.billing_event_id = split_part(s.schedule_key, ':', 1) || ':' || s.contract_number || ':'
                                 || substr(s.schedule_key, strpos(s.schedule_key, ':') + 1)
  WHERE e.status = 'billed' AND e.billing_event_id NOT LIKE '%:REV')
SELECT date_trunc('month', r.invoice_date)::date AS month, c.commercial_model, count(*) AS events,
       round(avg(r.invoice_date - st.started_at::date), 1) AS avg_days,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.invoice_date - st.started_at::date) AS median_days
FROM started st
JOIN dw.receivable r ON r.invoice_number = st.invoice_number
JOIN dw.contract c ON c.contract_number = st.contract_number
WHERE st.started_at IS NOT NULL AND r.status <> 'void'
GROUP BY date_trunc('month', r.invoice_date), c.commercial_model;

-- Weekly utilisation by person: approved billable hours over weekly capacity.
CREATE OR REPLACE VIEW dw.weekly_utilisation AS
SELECT r.employee_no, r.role_code, date_trunc('week', t.work_date)::date AS week,
       sum(t.hours) FILTER (WHERE t.billable) AS billable_hours,
       sum(t.hours) AS approved_hours,
       r.capacity_hours_week,
       round(coalesce(sum(t.hours) FILTER (WHERE t.billable), 0) / nullif(r.capacity_hours_week, 0) * 100, 1) AS utilisation_pct
FROM dw.time_entry t
JOIN dw.resource r ON r.id = t.resource_id
WHERE t.status = 'approved'
GROUP BY r.employee_no, r.role_code, r.capacity_hours_week, date_trunc('week', t.work_date);

-- Billing leakage, three ways:
-- approved billable work with no billing event that is ready or billed (quantity: hours of time,
-- the amount of an expense, in unit: 'hours' or the expense's currency),
CREATE OR REPLACE VIEW dw.leakage_unbilled_work AS
SELECT 'time' AS kind, 'psa.timesheet_entry:' || t.id AS source_ref, t.contract_number, t.work_date AS work_date, t.hours AS quantity,
       'hours'::text AS unit
FROM dw.time_entry t
WHERE t.status = 'approved' AND t.billable AND t.contract_number IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM dw.billing_event e WHERE e.source_ref = 'psa.timesheet_entry:' || t.id AND e.status IN ('ready', 'billed'))
UNION ALL
SELECT 'expense', 'psa.expense_line:' || x.id, x.contract_number, x.expense_date, x.amount, x.currency
FROM dw.expense_item x
WHERE x.status IN ('approved', 'reimbursed') AND x.billable AND x.contract_number IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM dw.billing_event e WHERE e.source_ref = 'psa.expense_line:' || x.id AND e.status IN ('ready', 'billed'));

-- events on hold, by reason and currency (an expense held for currency_mismatch is in its own),
CREATE OR REPLACE VIEW dw.leakage_on_hold AS
SELECT hold_reason, contract_number, count(*) AS events, sum(amount) AS amount, min(first_seen_at) AS oldest, currency
FROM dw.billing_event WHERE status = 'on_hold'
GROUP BY hold_reason, contract_number, currency;

-- and eligible schedule items not billed, with their age in days (filter on days_unbilled > N).
CREATE OR REPLACE VIEW dw.leakage_eligible_unbilled AS
SELECT contract_number, schedule_key, billing_type, amount, eligible_at,
       (current_date - coalesce(eligible_at, first_seen_at)::date) AS days_unbilled, currency
FROM dw.schedule_item WHERE status = 'eligible';

-- Quote-to-cash cycle: approval → project → first time → first billing event → first invoice → first payment.
CREATE OR REPLACE VIEW dw.quote_to_cash_cycle AS
WITH approved AS (
  SELECT c.contract_number, min(q.approved_at) AS approved_at
  FROM dw.contract c JOIN dw.quote q ON q.quote_number = c.contract_number
  GROUP BY c.contract_number),
project AS (SELECT contract_number, min(first_seen_at) AS project_at FROM dw.project GROUP BY contract_number),
first_time AS (SELECT contract_number, min(work_date) AS first_time_on FROM dw.time_entry WHERE status = 'approved' GROUP BY contract_number),
first_event AS (SELECT contract_number, min(first_seen_at) AS first_event_at FROM dw.billing_event GROUP BY contract_number),
first_invoice AS (SELECT contract_number, min(invoice_date) AS first_invoice_on FROM dw.receivable WHERE status <> 'void' AND contract_number IS NOT NULL GROUP BY contract_number),
first_payment AS (SELECT r.contract_number, min(p.rcpt_dt) AS first_payment_on
                  FROM dw.payment p JOIN dw.receivable r ON r.invoice_number = p.inv_no
                  WHERE r.contract_number IS NOT NULL GROUP BY r.contract_number)
SELECT a.contract_number, a.approved_at, p.project_at, t.first_time_on, e.first_event_at, i.first_invoice_on, pay.first_payment_on,
       p.project_at - a.approved_at AS approval_to_project,
       t.first_time_on - a.approved_at::date AS days_to_first_time,
       e.first_event_at - a.approved_at AS approval_to_first_event,
       i.first_invoice_on - a.approved_at::date AS days_to_first_invoice,
       pay.first_payment_on - a.approved_at::date AS days_to_first_payment
FROM approved a
LEFT JOIN project p USING (contract_number)
LEFT JOIN first_time t USING (contract_number)
LEFT JOIN first_event e USING (contract_number)
LEFT JOIN first_invoice i USING (contract_number)
LEFT JOIN first_payment pay USING (contract_number);

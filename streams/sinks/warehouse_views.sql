-- The views a controller opens first. All money in the engagement's currency.

-- Margin by engagement: billed and ready revenue against delivery cost.
CREATE OR REPLACE VIEW dw.margin_by_engagement AS
SELECT c.contract_number, c.client_name, c.commercial_model, c.currency, c.contract_value,
       coalesce(e.billed, 0) AS billed_revenue,
       coalesce(e.ready, 0) AS ready_revenue,
       coalesce(pc.cost, 0) AS cost,
       coalesce(e.billed, 0) + coalesce(e.ready, 0) - coalesce(pc.cost, 0) AS margin,
       CASE WHEN coalesce(e.billed, 0) + coalesce(e.ready, 0) = 0 THEN NULL
            ELSE round((coalesce(e.billed, 0) + coalesce(e.ready, 0) - coalesce(pc.cost, 0))
                       / (coalesce(e.billed, 0) + coalesce(e.ready, 0)) * 100, 1) END AS margin_pct
FROM dw.contract c
LEFT JOIN (SELECT contract_number,
                  sum(amount) FILTER (WHERE status = 'billed') AS billed,
                  sum(amount) FILTER (WHERE status = 'ready') AS ready
           FROM dw.billing_event GROUP BY contract_number) e USING (contract_number)
LEFT JOIN (SELECT contract_number, sum(cost_amount) AS cost
           FROM dw.project_cost WHERE status = 'posted' GROUP BY contract_number) pc USING (contract_number);

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
-- approved billable work with no billing event that is ready or billed,
CREATE OR REPLACE VIEW dw.leakage_unbilled_work AS
SELECT 'time' AS kind, 'psa.timesheet_entry:' || t.id AS source_ref, t.contract_number, t.work_date AS work_date, t.hours AS quantity
FROM dw.time_entry t
WHERE t.status = 'approved' AND t.billable AND t.contract_number IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM dw.billing_event e WHERE e.source_ref = 'psa.timesheet_entry:' || t.id AND e.status IN ('ready', 'billed'))
UNION ALL
SELECT 'expense', 'psa.expense_line:' || x.id, x.contract_number, x.expense_date, x.amount
FROM dw.expense_item x
WHERE x.status IN ('approved', 'reimbursed') AND x.billable AND x.contract_number IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM dw.billing_event e WHERE e.source_ref = 'psa.expense_line:' || x.id AND e.status IN ('ready', 'billed'));

-- events on hold, by reason,
CREATE OR REPLACE VIEW dw.leakage_on_hold AS
SELECT hold_reason, contract_number, count(*) AS events, sum(amount) AS amount, min(first_seen_at) AS oldest
FROM dw.billing_event WHERE status = 'on_hold'
GROUP BY hold_reason, contract_number;

-- and eligible schedule items not billed, with their age in days (filter on days_unbilled > N).
CREATE OR REPLACE VIEW dw.leakage_eligible_unbilled AS
SELECT contract_number, schedule_key, billing_type, amount, eligible_at,
       (current_date - coalesce(eligible_at, first_seen_at)::date) AS days_unbilled
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

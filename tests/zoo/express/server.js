'use strict';

// Enginy "Custom CRM API" server: Express 5, in-memory storage.
//
//   node server.js --port N --key KEY [--key-header NAME] [--bug ID ...]
//   node server.js --list-bugs

const crypto = require('node:crypto');
const http = require('node:http');
const express = require('express');

// ---------------------------------------------------------------------------
// Known bugs (switched on one by one with --bug ID)
// ---------------------------------------------------------------------------

const BUGS = [
  {
    id: 'batch-route-order',
    summary:
      'Registered PATCH /tasks/:id before PATCH /tasks/batch, as the public example server does, so Express ' +
      'routes PATCH /tasks/batch to the single-task handler with id "batch" and its store lookup fails ' +
      '(404 "No task exists with ID: batch"). The developer only curled PATCH /tasks/1, which works.',
    breaks:
      '`PATCH /tasks/batch` is not swallowed by `PATCH /tasks/{id}` (route-order check; `GET`/`PATCH` ' +
      '`/tasks/batch` must not be treated as id `"batch"`).',
    rule: 'TASK-BATCH-ROUTE',
  },
  {
    id: 'default-body-limit',
    summary:
      'Used app.use(express.json()) with its default 100kb limit, so a full batch of 100 contacts with every ' +
      'lead field filled (or a long HTML email body) is refused with 413. The curl test sent two contacts.',
    breaks: '`contacts` | array | yes | batch; **up to 100 contacts per request**',
    rule: 'CONTACT-CREATE-BATCH-100',
  },
  {
    id: 'health-before-auth',
    summary:
      'Put app.get("/health") above app.use(requireApiKey) so load balancers could probe it, so /health answers ' +
      '200 with no key or a wrong one. The curl test always sent the key.',
    breaks: 'The server must check the key on every call and answer **401 Unauthorized** if it is missing or wrong.',
    rule: 'AUTH-MISSING-KEY',
  },
  {
    id: 'empty-email-match',
    summary:
      'Sync compares (stored.email || "").toLowerCase() with (item.email || "").toLowerCase(), so a contact ' +
      'sent without an email "matches" the first stored contact that has none. The curl test always had emails.',
    breaks: 'Response (200): **only matched contacts**; unmatched ones are simply left out (no error).',
    rule: 'CONTACT-SYNC-OMITS-UNMATCHED',
  },
  {
    id: 'task-id-prototype-lookup',
    summary:
      'Looks tasks up with tasks[id] on a plain object, so ids such as "constructor" or "toString" find ' +
      'Object.prototype members and GET /tasks/constructor answers 200 instead of 404. The curl test used "1".',
    breaks: '`GET /tasks/{id}` for an unknown id returns 404.',
    rule: 'TASK-GET-UNKNOWN',
  },
  {
    id: 'utc-string-timestamps',
    summary:
      'Stamps completedAt with new Date().toUTCString() ("Mon, 15 Jan 2024 11:30:00 GMT"), which looked like a ' +
      'proper UTC timestamp; the curl test only looked at completed: true.',
    breaks: 'completedAt | string (ISO 8601) | No | When the task was completed',
    rule: 'TIMESTAMPS-ISO8601',
  },
  {
    id: 'domain-normalize-www',
    summary:
      'Copied a domain helper that only strips the protocol and the path, not "www." and not the case, so ' +
      '"https://www.Acme.com/about" no longer matches a stored "acme.com". The curl test synced "acme.com" itself.',
    breaks:
      'Domain normalisation rule given by the docs: lower-case → strip a leading `http://` / `https://` and a ' +
      'leading `www.` → drop everything from the first `/` → trim.',
    rule: 'COMPANY-SYNC-MATCHES-DOMAIN',
  },
];

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function usage(message) {
  process.stderr.write(
    `${message}; usage: server.js --port N --key KEY [--key-header NAME] [--bug ID ...] | --list-bugs\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: undefined, key: undefined, keyHeader: 'X-API-Key', bugs: [], listBugs: false };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq !== -1) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--port': opts.port = next(); break;
      case '--key': opts.key = next(); break;
      case '--key-header': opts.keyHeader = next(); break;
      case '--bug': opts.bugs.push(next()); break;
      case '--list-bugs': opts.listBugs = true; break;
      default: usage(`unknown argument: ${arg}`);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

if (opts.listBugs) {
  process.stdout.write(JSON.stringify(BUGS, null, 2) + '\n');
  process.exit(0);
}

for (const id of opts.bugs) {
  if (!BUGS.some((b) => b.id === id)) {
    process.stderr.write(`unknown bug id: ${id}\n`);
    process.exit(2);
  }
}
if (opts.port === undefined || !/^\d+$/.test(opts.port) || Number(opts.port) > 65535) usage('--port N is required');
if (!opts.key) usage('--key KEY is required');
if (!opts.keyHeader) usage('--key-header must not be empty');

const BUG = new Set(opts.bugs);

// ---------------------------------------------------------------------------
// In-memory data
// ---------------------------------------------------------------------------

const counters = { contact: 0, company: 0, task: 0, activity: 0 };
const nextId = (kind) => String(++counters[kind]);

const contacts = new Map(); // crmId -> contact
const companies = new Map(); // crmId -> company
const associations = new Map(); // contact crmId -> Set of company crmIds
const activities = new Map(); // id -> activity
const tasks = {}; // id -> task

function findTask(id) {
  if (BUG.has('task-id-prototype-lookup')) return tasks[id];
  return Object.hasOwn(tasks, id) ? tasks[id] : undefined;
}

function timestamp() {
  return BUG.has('utc-string-timestamps') ? new Date().toUTCString() : new Date().toISOString();
}

function normalizeEmail(email) {
  return typeof email === 'string' ? email.trim().toLowerCase() : '';
}

function normalizeLinkedin(url) {
  return typeof url === 'string' ? url.trim().toLowerCase().replace(/\/+$/, '') : '';
}

// "https://www.Acme.com/about" -> "acme.com"
function normalizeDomain(domain) {
  if (typeof domain !== 'string') return '';
  if (BUG.has('domain-normalize-www')) return domain.replace(/^https?:\/\//, '').split('/')[0].trim();
  return domain
    .trim()
    .toLowerCase()
    .replace(/^https?:\/\//, '')
    .replace(/^www\./, '')
    .split('/')[0]
    .trim();
}

function normalizeName(name) {
  return typeof name === 'string' ? name.trim().toLowerCase() : '';
}

function findContactMatch(item) {
  const email = normalizeEmail(item.email);
  if (email || BUG.has('empty-email-match')) {
    for (const contact of contacts.values()) {
      if (normalizeEmail(contact.email) === email) return contact;
    }
  }
  const linkedin = normalizeLinkedin(item.linkedinUrl);
  if (linkedin) {
    for (const contact of contacts.values()) {
      if (normalizeLinkedin(contact.linkedinUrl) === linkedin) return contact;
    }
  }
  return undefined;
}

function findCompanyMatch(item) {
  const checks = [
    [normalizeDomain(item.domain), (c) => normalizeDomain(c.domain)],
    [normalizeLinkedin(item.linkedinUrl), (c) => normalizeLinkedin(c.linkedinUrl)],
    [normalizeName(item.name), (c) => normalizeName(c.name)],
  ];
  for (const [wanted, keyOf] of checks) {
    if (!wanted) continue;
    for (const company of companies.values()) {
      if (keyOf(company) === wanted) return company;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const badRequest = (message) => new HttpError(400, message);

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// ISO 8601 date-time, e.g. 2024-01-15T10:00:00Z or 2024-01-15T10:00:00.000+02:00
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$/;

function jsonBody(req) {
  if (!isObject(req.body)) throw badRequest('Request body must be a JSON object');
  return req.body;
}

function listField(body, name) {
  if (!Array.isArray(body[name])) throw badRequest(`${name} must be an array`);
  return body[name];
}

function checkItem(item, where) {
  if (!isObject(item)) throw badRequest(`${where} must be an object`);
  return item;
}

function requireString(obj, field, where) {
  if (typeof obj[field] !== 'string' || obj[field] === '') throw badRequest(`${where}.${field} is required`);
}

function optionalStrings(obj, fields, where) {
  for (const field of fields) {
    if (obj[field] != null && typeof obj[field] !== 'string') throw badRequest(`${where}.${field} must be a string`);
  }
}

function optionalDateTime(obj, field, where) {
  const value = obj[field];
  if (value == null) return;
  if (typeof value !== 'string' || !ISO_DATE_TIME.test(value) || Number.isNaN(Date.parse(value))) {
    throw badRequest(`${where}.${field} must be an ISO 8601 date-time`);
  }
}

function oneOf(obj, field, allowed, where) {
  if (obj[field] != null && !allowed.includes(obj[field])) {
    throw badRequest(`${where}.${field} must be one of ${allowed.join(', ')}`);
  }
}

const CONTACT_STRING_FIELDS = ['email', 'firstName', 'lastName', 'phone', 'company', 'title', 'linkedinUrl', 'ownerId'];
const COMPANY_STRING_FIELDS = ['name', 'domain', 'industry', 'linkedinUrl', 'ownerId'];
const TASK_STRING_FIELDS = ['description', 'type', 'ownerId', 'dueDate', 'contactId', 'companyId'];
const ACTIVITY_TYPES = ['EMAIL', 'LINKEDIN', 'LINKEDIN_CONNECTION', 'LINKEDIN_INMAIL'];
const ACTIVITY_DIRECTIONS = ['INBOUND', 'OUTBOUND'];

function checkContact(item, where) {
  checkItem(item, where);
  optionalStrings(item, CONTACT_STRING_FIELDS, where);
  return item;
}

function checkCompany(item, where) {
  checkItem(item, where);
  optionalStrings(item, COMPANY_STRING_FIELDS, where);
  if (item.numberOfEmployees != null && typeof item.numberOfEmployees !== 'number') {
    throw badRequest(`${where}.numberOfEmployees must be a number`);
  }
  return item;
}

// ---------------------------------------------------------------------------
// App
// ---------------------------------------------------------------------------

const app = express();
app.disable('x-powered-by');

const expectedKey = Buffer.from(opts.key);

function requireApiKey(req, res, next) {
  const provided = Buffer.from(req.get(opts.keyHeader) ?? '');
  if (provided.length !== expectedKey.length || !crypto.timingSafeEqual(provided, expectedKey)) {
    return res.status(401).json({ message: 'Invalid or missing API key' });
  }
  next();
}

function health(req, res) {
  res.json({ status: 'ok' });
}

if (BUG.has('health-before-auth')) app.get('/health', health);
app.use(requireApiKey);
// Enginy sends up to 100 contacts with every lead field, and long HTML email bodies.
app.use(BUG.has('default-body-limit') ? express.json() : express.json({ limit: '10mb' }));

if (!BUG.has('health-before-auth')) app.get('/health', health);

// --- contacts ---------------------------------------------------------------

app.post('/contacts', (req, res) => {
  const items = listField(jsonBody(req), 'contacts');
  items.forEach((item, i) => {
    checkContact(item, `contacts[${i}]`);
    requireString(item, 'externalId', `contacts[${i}]`);
  });
  const results = items.map((item) => {
    const id = nextId('contact');
    contacts.set(id, { ...item, id });
    return { externalId: item.externalId, crmId: id };
  });
  res.json({ results });
});

app.post('/contacts/sync', (req, res) => {
  const items = listField(jsonBody(req), 'contacts');
  items.forEach((item, i) => {
    checkContact(item, `contacts[${i}]`);
    requireString(item, 'externalId', `contacts[${i}]`);
  });
  const results = [];
  for (const item of items) {
    const match = findContactMatch(item);
    if (match) results.push({ externalId: item.externalId, crmId: match.id });
  }
  res.json({ results });
});

app.put('/contacts', (req, res) => {
  const items = listField(jsonBody(req), 'contacts');
  items.forEach((item, i) => {
    checkContact(item, `contacts[${i}]`);
    requireString(item, 'crmId', `contacts[${i}]`);
  });
  const results = items.map(({ crmId, ...changes }) => {
    const contact = contacts.get(crmId);
    if (!contact) return { crmId, success: false };
    Object.assign(contact, changes, { id: crmId });
    return { crmId, success: true };
  });
  res.json({ results });
});

// --- companies --------------------------------------------------------------

app.post('/companies', (req, res) => {
  const items = listField(jsonBody(req), 'companies');
  items.forEach((item, i) => {
    checkCompany(item, `companies[${i}]`);
    requireString(item, 'externalId', `companies[${i}]`);
  });
  const results = items.map((item) => {
    const id = nextId('company');
    companies.set(id, { ...item, id });
    return { externalId: item.externalId, crmId: id };
  });
  res.json({ results });
});

app.post('/companies/sync', (req, res) => {
  const items = listField(jsonBody(req), 'companies');
  items.forEach((item, i) => {
    checkCompany(item, `companies[${i}]`);
    requireString(item, 'externalId', `companies[${i}]`);
  });
  const results = [];
  for (const item of items) {
    const match = findCompanyMatch(item);
    if (match) results.push({ externalId: item.externalId, crmId: match.id });
  }
  res.json({ results });
});

app.put('/companies', (req, res) => {
  const items = listField(jsonBody(req), 'companies');
  items.forEach((item, i) => {
    checkCompany(item, `companies[${i}]`);
    requireString(item, 'crmId', `companies[${i}]`);
  });
  const results = items.map(({ crmId, ...changes }) => {
    const company = companies.get(crmId);
    if (!company) return { crmId, success: false };
    Object.assign(company, changes, { id: crmId });
    return { crmId, success: true };
  });
  res.json({ results });
});

// --- associations -----------------------------------------------------------

app.post('/associations', (req, res) => {
  const pairs = listField(jsonBody(req), 'associations');
  pairs.forEach((pair, i) => {
    checkItem(pair, `associations[${i}]`);
    requireString(pair, 'contactCRMId', `associations[${i}]`);
    requireString(pair, 'companyCRMId', `associations[${i}]`);
  });
  let created = 0;
  const errors = [];
  for (const { contactCRMId, companyCRMId } of pairs) {
    let error;
    if (!contacts.has(contactCRMId)) error = 'Contact not found';
    else if (!companies.has(companyCRMId)) error = 'Company not found';
    if (error) {
      errors.push({ contactCRMId, companyCRMId, error });
      continue;
    }
    if (!associations.has(contactCRMId)) associations.set(contactCRMId, new Set());
    const linked = associations.get(contactCRMId);
    if (!linked.has(companyCRMId)) {
      linked.add(companyCRMId);
      created++;
    }
  }
  res.json({ success: true, created, errors });
});

// --- activities -------------------------------------------------------------

app.post('/activities', (req, res) => {
  const body = jsonBody(req);
  if (body.type == null) throw badRequest('type is required');
  oneOf(body, 'type', ACTIVITY_TYPES, 'body');
  oneOf(body, 'direction', ACTIVITY_DIRECTIONS, 'body');
  optionalStrings(body, ['subject', 'body', 'ownerId', 'occurredAt', 'contactId', 'companyId'], 'body');
  optionalDateTime(body, 'occurredAt', 'body');
  if (body.metadata != null && !isObject(body.metadata)) throw badRequest('body.metadata must be an object');

  const activity = {
    id: nextId('activity'),
    type: body.type,
    subject: body.subject ?? null,
    body: body.body ?? null,
    direction: body.direction ?? null,
    ownerId: body.ownerId ?? null,
    occurredAt: body.occurredAt ?? null,
    contactId: body.contactId ?? null,
    companyId: body.companyId ?? null,
    metadata: body.metadata ?? null,
  };
  activities.set(activity.id, activity);
  res.json(activity);
});

// --- tasks ------------------------------------------------------------------

function setCompleted(task, completed) {
  if (completed && !task.completed) task.completedAt = timestamp();
  if (!completed) task.completedAt = null;
  task.completed = completed;
}

function checkTaskFields(body) {
  optionalStrings(body, TASK_STRING_FIELDS, 'body');
  optionalDateTime(body, 'dueDate', 'body');
}

function idsField(body) {
  const ids = listField(body, 'ids');
  if (!ids.every((id) => typeof id === 'string')) throw badRequest('ids must be an array of strings');
  return [...new Set(ids)];
}

function createTask(req, res) {
  const body = jsonBody(req);
  requireString(body, 'subject', 'body');
  checkTaskFields(body);
  const task = {
    id: nextId('task'),
    subject: body.subject,
    description: body.description ?? null,
    type: body.type ?? null,
    ownerId: body.ownerId ?? null,
    dueDate: body.dueDate ?? null,
    contactId: body.contactId ?? null,
    companyId: body.companyId ?? null,
    completed: false,
    completedAt: null,
  };
  tasks[task.id] = task;
  res.json(task);
}

function getTask(req, res) {
  const task = findTask(req.params.id);
  if (!task) throw new HttpError(404, `No task exists with ID: ${req.params.id}`);
  res.json(task);
}

function updateTask(req, res) {
  const body = jsonBody(req);
  if (body.completed !== undefined && typeof body.completed !== 'boolean') {
    throw badRequest('completed must be a boolean');
  }
  if (body.subject !== undefined) requireString(body, 'subject', 'body');
  checkTaskFields(body);

  const task = findTask(req.params.id);
  if (!task) throw new HttpError(404, `No task exists with ID: ${req.params.id}`);
  for (const field of ['subject', ...TASK_STRING_FIELDS]) {
    if (body[field] !== undefined) task[field] = body[field];
  }
  if (body.completed !== undefined) setCompleted(task, body.completed);
  res.json(task);
}

function getTasksBatch(req, res) {
  const ids = idsField(jsonBody(req));
  res.json(ids.map(findTask).filter(Boolean));
}

function completeTasksBatch(req, res) {
  const body = jsonBody(req);
  const ids = idsField(body);
  if (typeof body.completed !== 'boolean') throw badRequest('completed must be a boolean');
  const updated = ids.map(findTask).filter(Boolean);
  for (const task of updated) setCompleted(task, body.completed);
  res.json(updated);
}

app.post('/tasks', createTask);
app.post('/tasks/batch', getTasksBatch);
if (BUG.has('batch-route-order')) app.patch('/tasks/:id', updateTask);
app.patch('/tasks/batch', completeTasksBatch);
app.get('/tasks/:id', getTask);
if (!BUG.has('batch-route-order')) app.patch('/tasks/:id', updateTask);

// GET /users is optional and not implemented: Express answers its default 404.

// Errors (validation, body-parser's 400/413, anything thrown) as {"message": "..."}
app.use((err, req, res, next) => {
  const status = err.status || err.statusCode || 500;
  if (status >= 500) console.error(err);
  const message = err instanceof HttpError || err.expose ? err.message : http.STATUS_CODES[status];
  res.status(status).json({ message });
});

// ---------------------------------------------------------------------------
// Start / stop
// ---------------------------------------------------------------------------

const server = app.listen(Number(opts.port), '127.0.0.1', (err) => {
  if (err) {
    process.stderr.write(`cannot listen: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 1500).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

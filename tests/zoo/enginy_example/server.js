'use strict';
// Custom CRM API for Enginy, in the style of Enginy's public example server
// (Express + Prisma + SQLite). Prisma is not available here, so `prisma` below is a
// small in-memory store offering the part of Prisma Client's API this server uses,
// with Prisma's behaviour: update() throws P2025 when the record does not exist,
// findUnique() resolves to null, unset optional columns read as null, ids are UUIDs.
//
//   node server.js --port N --key K [--key-header NAME] [--bug ID ...]
//   node server.js --list-bugs

const express = require('express');
const http = require('node:http');
const { randomUUID } = require('node:crypto');

// ============== BUGS (switched on with --bug ID) ==============

const BUGS = [
  {
    id: 'batch-route-order',
    summary: 'The batch endpoints were added last, so GET/PATCH /tasks/:id are declared before PATCH /tasks/batch (as in Enginy\'s public example server). PATCH /tasks/batch is taken by the single-task handler with id "batch", whose Prisma update throws P2025 and is answered 500; PATCH /tasks/<unknown id> is answered 500 the same way (no existence check). POST /tasks/batch and single-task PATCH on a real id still work, which is what the curl test tried.',
    breaks: 'PATCH /tasks/batch is not swallowed by PATCH /tasks/{id} (route-order check; GET/PATCH /tasks/batch must not be treated as id "batch").',
    rule: 'TASK-BATCH-ROUTE',
  },
  {
    id: 'update-unknown-500',
    summary: 'The single-task PATCH calls prisma.task.update() straight away, without findUnique() first; for an unknown id Prisma throws P2025 "Record to update not found" and the catch-all answers 500. The curl test only patched a task it had just created.',
    breaks: 'PATCH /tasks/{id} with an unknown id returns 404 (generic table)',
    rule: 'TASK-UPDATE-UNKNOWN',
  },
  {
    id: 'health-no-auth',
    summary: 'Like the example server\'s auth middleware, /health is on the list of public paths that skip the key check (so monitors can call it). The curl test sent the key and got 200.',
    breaks: 'The server must check the key on every call and answer 401 Unauthorized if it is missing or wrong.',
    rule: 'AUTH-MISSING-KEY',
  },
  {
    id: 'sync-by-external-id',
    summary: 'Like the example server, /contacts/sync and /companies/sync look records up by Enginy\'s externalId only, so a contact is never matched by its email (or a company by its domain). The curl test synced the very payload it had just exported, which matches by externalId.',
    breaks: 'Suggested matching (docs "examples" summary): primary email, lower-cased; fallback linkedinUrl with trailing slashes removed',
    rule: 'CONTACT-SYNC-MATCHES-EMAIL',
  },
];

function usage(message) {
  process.stderr.write(`${message} (usage: server.js --port N --key KEY [--key-header NAME] [--bug ID ...] | --list-bugs)\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { port: undefined, key: undefined, keyHeader: 'X-API-Key', bugs: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--list-bugs') {
      process.stdout.write(JSON.stringify(BUGS, null, 2) + '\n');
      process.exit(0);
    }
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    if (!['--port', '--key', '--key-header', '--bug'].includes(name)) usage(`unknown argument: ${arg}`);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) usage(`${name} needs a value`);
    if (name === '--port') options.port = value;
    if (name === '--key') options.key = value;
    if (name === '--key-header') options.keyHeader = value;
    if (name === '--bug') {
      if (!BUGS.some((bug) => bug.id === value)) usage(`unknown bug id: ${value}`);
      options.bugs.add(value);
    }
  }
  if (options.port === undefined || !/^\d+$/.test(options.port) || Number(options.port) > 65535) usage('--port N is required');
  if (!options.key) usage('--key KEY is required');
  options.port = Number(options.port);
  return options;
}

const config = parseArgs(process.argv.slice(2));
const bugs = config.bugs;

// ============== PRISMA-LIKE IN-MEMORY STORE ==============

class PrismaClientKnownRequestError extends Error {
  constructor(message, { code, meta }) {
    super(message);
    this.name = 'PrismaClientKnownRequestError';
    this.code = code;
    this.meta = meta;
  }
}

function withoutUndefined(data) {
  return Object.fromEntries(Object.entries(data).filter(([, value]) => value !== undefined));
}

function matchesWhere(row, where = {}) {
  return Object.entries(where).every(([field, condition]) => {
    if (condition === undefined) return true; // Prisma ignores undefined filters
    if (condition !== null && typeof condition === 'object' && Array.isArray(condition.in)) {
      return condition.in.includes(row[field]);
    }
    return row[field] === condition;
  });
}

class Model {
  constructor(name, columns) {
    this.name = name;
    this.columns = columns; // optional columns, null until set
    this.rows = new Map();
  }

  async create({ data }) {
    const now = new Date();
    const row = { id: randomUUID(), ...this.columns, ...withoutUndefined(data), createdAt: now, updatedAt: now };
    this.rows.set(row.id, row);
    return { ...row };
  }

  async findUnique({ where }) {
    const row = this.rows.get(where.id);
    return row ? { ...row } : null;
  }

  async findFirst({ where, orderBy } = {}) {
    const rows = [...this.rows.values()];
    if (orderBy && orderBy.createdAt === 'desc') rows.reverse();
    const row = rows.find((candidate) => matchesWhere(candidate, where));
    return row ? { ...row } : null;
  }

  async findMany({ where } = {}) {
    return [...this.rows.values()].filter((row) => matchesWhere(row, where)).map((row) => ({ ...row }));
  }

  async update({ where, data }) {
    const row = this.rows.get(where.id);
    if (!row) {
      throw new PrismaClientKnownRequestError(
        `\nInvalid \`prisma.${this.name}.update()\` invocation:\n\n\nAn operation failed because it depends on one or more records that were required but not found. Record to update not found.`,
        { code: 'P2025', meta: { modelName: this.name[0].toUpperCase() + this.name.slice(1), cause: 'Record to update not found.' } },
      );
    }
    Object.assign(row, withoutUndefined(data), { updatedAt: new Date() });
    return { ...row };
  }

  async updateMany({ where, data }) {
    let count = 0;
    for (const row of this.rows.values()) {
      if (matchesWhere(row, where)) {
        Object.assign(row, withoutUndefined(data), { updatedAt: new Date() });
        count++;
      }
    }
    return { count };
  }
}

const prisma = {
  contact: new Model('contact', {
    externalId: null, email: null, firstName: null, lastName: null, phone: null, company: null,
    title: null, linkedinUrl: null, ownerId: null, emailKey: null, linkedinKey: null, data: null,
  }),
  company: new Model('company', {
    externalId: null, name: null, domain: null, industry: null, numberOfEmployees: null,
    linkedinUrl: null, ownerId: null, domainKey: null, linkedinKey: null, nameKey: null, data: null,
  }),
  association: new Model('association', { contactId: null, companyId: null }),
  task: new Model('task', {
    subject: null, description: null, type: null, ownerId: null, dueDate: null,
    contactId: null, companyId: null, completed: false, completedAt: null,
  }),
  activity: new Model('activity', {
    type: null, subject: null, body: null, direction: null, ownerId: null, occurredAt: null,
    contactId: null, companyId: null, metadata: null,
  }),
};

// ============== HELPERS ==============

const normalizeEmail = (value) => (typeof value === 'string' && value.trim() ? value.trim().toLowerCase() : null);

const normalizeLinkedinUrl = (value) => {
  if (typeof value !== 'string') return null;
  const url = value.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/^www\./, '').replace(/\/+$/, '');
  return url || null;
};

// Docs: lower-case, strip protocol and "www.", drop everything from the first "/", trim.
const normalizeDomain = (value) => {
  if (typeof value !== 'string') return null;
  const domain = value.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/^www\./, '').split('/')[0].trim();
  return domain || null;
};

const normalizeName = (value) => (typeof value === 'string' && value.trim() ? value.trim().toLowerCase() : null);

// Recomputes a match key only when the field was sent (undefined leaves the column untouched).
const keyOf = (value, normalize) => (value === undefined ? undefined : normalize(value));

const isPlainObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

const isDateString = (value) => typeof value === 'string' && !Number.isNaN(Date.parse(value));

function badRequest(res, message) {
  return res.status(400).json({ error: 'Bad Request', message });
}

function taskNotFound(res, id) {
  return res.status(404).json({ error: 'Task not found', message: `No task exists with ID: ${id}` });
}

// Checks a batch body: `list` must be an array of objects, each with a non-empty string `key`.
function checkBatch(list, name, key) {
  if (!Array.isArray(list)) return `${name} must be an array`;
  for (let i = 0; i < list.length; i++) {
    if (!isPlainObject(list[i])) return `${name}[${i}] must be an object`;
    if (key && (typeof list[i][key] !== 'string' || !list[i][key])) return `${name}[${i}].${key} is required`;
  }
  return null;
}

function checkOptionalStrings(body, fields) {
  const field = fields.find((name) => body[name] != null && typeof body[name] !== 'string');
  return field ? `${field} must be a string` : null;
}

function compact(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value != null));
}

// ============== APP ==============

const app = express();

// API key auth on every route. Header names are case-insensitive (req.get lower-cases).
app.use((req, res, next) => {
  if (bugs.has('health-no-auth') && req.path === '/health') return next();
  if (req.get(config.keyHeader) !== config.key) {
    return res.status(401).json({ error: 'Unauthorized', message: 'Invalid or missing API key' });
  }
  next();
});

// Enginy sends up to 100 fully filled contacts and long HTML email bodies.
app.use(express.json({ limit: '50mb' }));

// ============== HEALTH CHECK ==============

app.get('/health', (req, res) => {
  res.json({ status: 'ok', timestamp: new Date().toISOString() });
});

// ============== CONTACTS ==============

function contactColumns(contact) {
  return {
    email: contact.email,
    firstName: contact.firstName,
    lastName: contact.lastName,
    phone: contact.phone,
    company: contact.company,
    title: contact.title,
    linkedinUrl: contact.linkedinUrl,
    ownerId: contact.ownerId,
    emailKey: keyOf(contact.email, normalizeEmail),
    linkedinKey: keyOf(contact.linkedinUrl, normalizeLinkedinUrl),
  };
}

function contactProperties(contact) {
  return compact({
    email: contact.email,
    phone: contact.phone,
    firstName: contact.firstName,
    lastName: contact.lastName,
    title: contact.title,
    company: contact.company,
    linkedinUrl: contact.linkedinUrl,
    ownerId: contact.ownerId,
  });
}

async function findMatchingContact(contact) {
  if (bugs.has('sync-by-external-id')) {
    return prisma.contact.findFirst({ where: { externalId: contact.externalId } });
  }
  const emailKey = normalizeEmail(contact.email);
  if (emailKey) {
    const byEmail = await prisma.contact.findFirst({ where: { emailKey }, orderBy: { createdAt: 'desc' } });
    if (byEmail) return byEmail;
  }
  const linkedinKey = normalizeLinkedinUrl(contact.linkedinUrl);
  if (linkedinKey) {
    return prisma.contact.findFirst({ where: { linkedinKey }, orderBy: { createdAt: 'desc' } });
  }
  return null;
}

// POST /contacts - Create contacts
app.post('/contacts', async (req, res) => {
  try {
    const { contacts } = req.body ?? {};
    const problem = checkBatch(contacts, 'contacts', 'externalId');
    if (problem) return badRequest(res, problem);

    const results = [];
    for (const contact of contacts) {
      const created = await prisma.contact.create({
        data: { externalId: contact.externalId, ...contactColumns(contact), data: contact },
      });
      results.push({ externalId: contact.externalId, crmId: created.id });
    }
    res.json({ results });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// PUT /contacts - Update contacts matched earlier (by crmId)
app.put('/contacts', async (req, res) => {
  try {
    const { contacts } = req.body ?? {};
    const problem = checkBatch(contacts, 'contacts');
    if (problem) return badRequest(res, problem);

    const results = [];
    for (const { crmId, ...fields } of contacts) {
      if (typeof crmId !== 'string' || !crmId) {
        results.push({ crmId: crmId ?? null, success: false, error: 'crmId is required' });
        continue;
      }
      const existing = await prisma.contact.findUnique({ where: { id: crmId } });
      if (!existing) {
        results.push({ crmId, success: false, error: 'Contact not found' });
        continue;
      }
      const updated = await prisma.contact.update({
        where: { id: crmId },
        data: { ...contactColumns(fields), data: { ...existing.data, ...fields } },
      });
      results.push({ crmId, success: true, properties: { ownerId: updated.ownerId } });
    }
    res.json({ results });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// POST /contacts/sync - Find existing contacts (email, then LinkedIn URL)
app.post('/contacts/sync', async (req, res) => {
  try {
    const { contacts } = req.body ?? {};
    const problem = checkBatch(contacts, 'contacts', 'externalId');
    if (problem) return badRequest(res, problem);

    const results = [];
    for (const contact of contacts) {
      const existing = await findMatchingContact(contact);
      if (existing) {
        results.push({ externalId: contact.externalId, crmId: existing.id, properties: contactProperties(existing) });
      }
    }
    res.json({ results });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// ============== COMPANIES ==============

function companyColumns(company) {
  return {
    name: company.name,
    domain: company.domain,
    industry: company.industry,
    numberOfEmployees: company.numberOfEmployees,
    linkedinUrl: company.linkedinUrl,
    ownerId: company.ownerId,
    domainKey: keyOf(company.domain, normalizeDomain),
    linkedinKey: keyOf(company.linkedinUrl, normalizeLinkedinUrl),
    nameKey: keyOf(company.name, normalizeName),
  };
}

function companyProperties(company) {
  return compact({
    name: company.name,
    domain: company.domain,
    industry: company.industry,
    numberOfEmployees: company.numberOfEmployees,
    linkedinUrl: company.linkedinUrl,
    ownerId: company.ownerId,
  });
}

async function findMatchingCompany(company) {
  if (bugs.has('sync-by-external-id')) {
    return prisma.company.findFirst({ where: { externalId: company.externalId } });
  }
  const keys = [
    ['domainKey', normalizeDomain(company.domain)],
    ['linkedinKey', normalizeLinkedinUrl(company.linkedinUrl)],
    ['nameKey', normalizeName(company.name)],
  ];
  for (const [column, key] of keys) {
    if (!key) continue;
    const found = await prisma.company.findFirst({ where: { [column]: key }, orderBy: { createdAt: 'desc' } });
    if (found) return found;
  }
  return null;
}

// POST /companies - Create companies
app.post('/companies', async (req, res) => {
  try {
    const { companies } = req.body ?? {};
    const problem = checkBatch(companies, 'companies', 'externalId');
    if (problem) return badRequest(res, problem);

    const results = [];
    for (const company of companies) {
      const created = await prisma.company.create({
        data: { externalId: company.externalId, ...companyColumns(company), data: company },
      });
      results.push({ externalId: company.externalId, crmId: created.id });
    }
    res.json({ results });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// PUT /companies - Update companies matched earlier (by crmId)
app.put('/companies', async (req, res) => {
  try {
    const { companies } = req.body ?? {};
    const problem = checkBatch(companies, 'companies');
    if (problem) return badRequest(res, problem);

    const results = [];
    for (const { crmId, ...fields } of companies) {
      if (typeof crmId !== 'string' || !crmId) {
        results.push({ crmId: crmId ?? null, success: false, error: 'crmId is required' });
        continue;
      }
      const existing = await prisma.company.findUnique({ where: { id: crmId } });
      if (!existing) {
        results.push({ crmId, success: false, error: 'Company not found' });
        continue;
      }
      const updated = await prisma.company.update({
        where: { id: crmId },
        data: { ...companyColumns(fields), data: { ...existing.data, ...fields } },
      });
      results.push({ crmId, success: true, properties: { ownerId: updated.ownerId } });
    }
    res.json({ results });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// POST /companies/sync - Find existing companies (domain, then LinkedIn URL, then name)
app.post('/companies/sync', async (req, res) => {
  try {
    const { companies } = req.body ?? {};
    const problem = checkBatch(companies, 'companies', 'externalId');
    if (problem) return badRequest(res, problem);

    const results = [];
    for (const company of companies) {
      const existing = await findMatchingCompany(company);
      if (existing) {
        results.push({ externalId: company.externalId, crmId: existing.id, properties: companyProperties(existing) });
      }
    }
    res.json({ results });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// ============== ASSOCIATIONS ==============

// POST /associations - Link contacts to companies (existing pairs are skipped)
app.post('/associations', async (req, res) => {
  try {
    const { associations } = req.body ?? {};
    if (!Array.isArray(associations)) return badRequest(res, 'associations must be an array');

    let created = 0;
    const errors = [];
    for (const association of associations) {
      const { contactCRMId = null, companyCRMId = null } = isPlainObject(association) ? association : {};
      const pair = { contactCRMId, companyCRMId };
      if (typeof contactCRMId !== 'string' || typeof companyCRMId !== 'string') {
        errors.push({ ...pair, error: 'contactCRMId and companyCRMId are required' });
        continue;
      }
      if (!(await prisma.contact.findUnique({ where: { id: contactCRMId } }))) {
        errors.push({ ...pair, error: 'Contact not found' });
        continue;
      }
      if (!(await prisma.company.findUnique({ where: { id: companyCRMId } }))) {
        errors.push({ ...pair, error: 'Company not found' });
        continue;
      }
      const existing = await prisma.association.findFirst({ where: { contactId: contactCRMId, companyId: companyCRMId } });
      if (existing) continue;
      await prisma.association.create({ data: { contactId: contactCRMId, companyId: companyCRMId } });
      created++;
    }
    res.json(errors.length ? { success: true, created, errors } : { success: true, created });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// ============== ACTIVITIES ==============

const ACTIVITY_TYPES = ['EMAIL', 'LINKEDIN', 'LINKEDIN_INMAIL', 'LINKEDIN_CONNECTION'];
const DIRECTIONS = ['INBOUND', 'OUTBOUND'];

// POST /activities - Log an activity
app.post('/activities', async (req, res) => {
  try {
    const body = req.body ?? {};
    if (body.type == null) return badRequest(res, 'type is required');
    if (!ACTIVITY_TYPES.includes(body.type)) return badRequest(res, `type must be one of ${ACTIVITY_TYPES.join(', ')}`);
    if (body.direction != null && !DIRECTIONS.includes(body.direction)) {
      return badRequest(res, `direction must be one of ${DIRECTIONS.join(', ')}`);
    }
    const problem = checkOptionalStrings(body, ['subject', 'body', 'ownerId', 'contactId', 'companyId']);
    if (problem) return badRequest(res, problem);
    if (body.occurredAt != null && !isDateString(body.occurredAt)) return badRequest(res, 'occurredAt must be an ISO 8601 date');
    if (body.metadata != null && !isPlainObject(body.metadata)) return badRequest(res, 'metadata must be an object');

    const activity = await prisma.activity.create({
      data: {
        type: body.type,
        subject: body.subject,
        body: body.body,
        direction: body.direction,
        ownerId: body.ownerId,
        occurredAt: body.occurredAt ? new Date(body.occurredAt) : null,
        contactId: body.contactId,
        companyId: body.companyId,
        metadata: body.metadata,
      },
    });
    res.json(activity);
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// ============== TASKS ==============

function completionChange(completed) {
  if (completed === undefined) return {};
  return { completed, completedAt: completed ? new Date() : null };
}

// POST /tasks - Create task
app.post('/tasks', async (req, res) => {
  try {
    const body = req.body ?? {};
    if (typeof body.subject !== 'string' || !body.subject.trim()) return badRequest(res, 'subject is required');
    const problem = checkOptionalStrings(body, ['description', 'type', 'ownerId', 'contactId', 'companyId']);
    if (problem) return badRequest(res, problem);
    if (body.dueDate != null && !isDateString(body.dueDate)) return badRequest(res, 'dueDate must be an ISO 8601 date');

    const task = await prisma.task.create({
      data: {
        subject: body.subject,
        description: body.description,
        type: body.type,
        ownerId: body.ownerId,
        dueDate: body.dueDate ? new Date(body.dueDate) : null,
        contactId: body.contactId,
        companyId: body.companyId,
      },
    });
    res.json(task);
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// GET /tasks/:id - Get task
async function getTask(req, res) {
  try {
    const task = await prisma.task.findUnique({ where: { id: req.params.id } });
    if (!task) return taskNotFound(res, req.params.id);
    res.json(task);
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
}

// PATCH /tasks/:id - Update (complete) task
async function updateTask(req, res) {
  try {
    const { completed } = req.body ?? {};
    if (completed !== undefined && typeof completed !== 'boolean') return badRequest(res, 'completed must be a boolean');

    const checksExistence = !bugs.has('update-unknown-500') && !bugs.has('batch-route-order');
    if (checksExistence && !(await prisma.task.findUnique({ where: { id: req.params.id } }))) {
      return taskNotFound(res, req.params.id);
    }
    const task = await prisma.task.update({ where: { id: req.params.id }, data: completionChange(completed) });
    res.json(task);
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
}

function checkIds(ids) {
  return Array.isArray(ids) && ids.every((id) => typeof id === 'string') ? null : 'ids must be an array of strings';
}

// POST /tasks/batch - Get many tasks (unknown ids are omitted)
async function getTasksBatch(req, res) {
  try {
    const { ids } = req.body ?? {};
    const problem = checkIds(ids);
    if (problem) return badRequest(res, problem);

    const tasks = await prisma.task.findMany({ where: { id: { in: ids } } });
    res.json(tasks);
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
}

// PATCH /tasks/batch - Complete many tasks (unknown ids are omitted)
async function completeTasksBatch(req, res) {
  try {
    const { ids, completed } = req.body ?? {};
    const problem = checkIds(ids) ?? (typeof completed === 'boolean' ? null : 'completed must be a boolean');
    if (problem) return badRequest(res, problem);

    await prisma.task.updateMany({ where: { id: { in: ids } }, data: completionChange(completed) });
    const tasks = await prisma.task.findMany({ where: { id: { in: ids } } });
    res.json(tasks);
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
}

if (bugs.has('batch-route-order')) {
  app.get('/tasks/:id', getTask);
  app.patch('/tasks/:id', updateTask);
  app.post('/tasks/batch', getTasksBatch);
  app.patch('/tasks/batch', completeTasksBatch);
} else {
  // The literal /tasks/batch routes must come before /tasks/:id, or "batch" is taken for an id.
  app.post('/tasks/batch', getTasksBatch);
  app.patch('/tasks/batch', completeTasksBatch);
  app.get('/tasks/:id', getTask);
  app.patch('/tasks/:id', updateTask);
}

// GET /users is optional and not implemented: Express answers 404.

// Errors raised before a route runs (malformed JSON, body too large) answer JSON too.
app.use((err, req, res, next) => {
  const status = Number.isInteger(err.status) && err.status >= 400 && err.status < 600 ? err.status : 500;
  if (status >= 500) console.error(err);
  res.status(status).json({
    error: http.STATUS_CODES[status] || 'Error',
    message: status < 500 && err.expose ? err.message : 'Internal Server Error',
  });
});

// ============== START ==============

const server = app.listen(config.port, '127.0.0.1', (error) => {
  if (error) {
    process.stderr.write(`cannot listen on 127.0.0.1:${config.port}: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on http://127.0.0.1:${config.port}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

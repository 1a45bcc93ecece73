#!/usr/bin/env node
// tests/scim-server.js - a SCIM 2.0 service provider for the tests: the
// npm packages scimmy (resources, schemas, filters, PATCH, paging) and
// scimmy-routers (the HTTP endpoints, over express), with in-memory
// storage, bearer-token authentication, ETags, a request log and fault
// injection.  tests/scim-server.md documents it; tests/scim.sh starts it.
// Its dependencies live in tests/scim/node_modules (tests/scim-deps.sh
// runs `npm ci` there).
"use strict";

const path = require("path");
const fs = require("fs");
const crypto = require("crypto");
const mods = path.join(__dirname, "scim", "node_modules");
const express = require(path.join(mods, "express"));
const {SCIMMYRouters, SCIMMY} = require(path.join(mods, "scimmy-routers"));

const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

function usage(msg) {
	if (msg)
		process.stderr.write(`scim-server: ${msg}\n`);
	process.stderr.write("usage: scim-server.js --token-file F [--port N] " +
	    "[--bind ADDR] [--port-file F] [--log F] [--max-count N]\n" +
	    "       [--tls-cert PEM --tls-key PEM] [--no-patch]\n");
	process.exit(2);
}

const opt = {bind: "127.0.0.1", port: 0, portFile: null, log: null,
    tokenFile: null, maxCount: 0, tlsCert: null, tlsKey: null};
{
	const a = process.argv.slice(2);
	for (let i = 0; i < a.length; i++) {
		const need = () => {
			if (i + 1 >= a.length)
				usage(`${a[i]} needs a value`);
			return a[++i];
		};
		switch (a[i]) {
		case "--bind": opt.bind = need(); break;
		case "--port": opt.port = Number(need()); break;
		case "--port-file": opt.portFile = need(); break;
		case "--log": opt.log = need(); break;
		case "--token-file": opt.tokenFile = need(); break;
		case "--max-count": opt.maxCount = Number(need()); break;
		case "--no-patch": opt.noPatch = true; break;
		case "--tls-cert": opt.tlsCert = need(); break;
		case "--tls-key": opt.tlsKey = need(); break;
		default: usage(`unknown option '${a[i]}'`);
		}
	}
	if (!opt.tokenFile)
		usage("--token-file is required");
	if (!opt.tlsCert !== !opt.tlsKey)
		usage("--tls-cert and --tls-key go together");
}
// The token comes from a file so that it never shows in ps.
const TOKEN = fs.readFileSync(opt.tokenFile, "utf8").trim();
if (!TOKEN)
	usage(`'${opt.tokenFile}' is empty`);

// The store: objects in insertion order (the order lists are served in,
// so that a test can shift pages by inserting at the front).  Each
// object is kept as the JSON scimmy accepted, plus id and meta.
let store = {Users: [], Groups: []};
let version = 0;		// bumped on every write, gives the ETags
let faults = {rules: [], max_count: opt.maxCount, random: null,
    hide_new: 0, ignore_attributes: false};
// hide_new: when each object created since it was set appears (ms since
// the epoch), by id.  Until then it is missing from every read and from
// the uniqueness checks, as on a service whose lists and indexes lag
// behind its writes (eventual consistency).
let appears = new Map();
let rngState = 0;	// of the random faults, from their seed
let logEntries = [];
let seq = 0;

function nextVersion() {
	version++;
	return `W/"${version}"`;
}

function newId() {
	return crypto.randomUUID();
}

function find(kind, id) {
	return store[kind].find(o => o.id === id);
}

function visible(o) {
	return !(appears.get(o.id) > Date.now());
}

function clone(v) {
	return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

function stamp(kind, obj, old) {
	const now = new Date().toISOString();
	obj.meta = {
		resourceType: kind === "Users" ? "User" : "Group",
		created: old ? old.meta.created : now,
		lastModified: now,
		version: nextVersion()
	};
	return obj;
}

// Strips what the service provider owns, to compare two versions of an
// object's content: a write that changes nothing keeps its version and
// lastModified (RFC 7644 3.5.2.1).
function content(o) {
	const c = clone(o);
	delete c.id;
	delete c.meta;
	delete c.schemas;
	delete c.groups;
	return JSON.stringify(c, Object.keys(flatKeys(c)).sort());
}

function flatKeys(o, acc = {}) {
	if (o && typeof o === "object")
		for (const k of Object.keys(o)) {
			acc[k] = 1;
			flatKeys(o[k], acc);
		}
	return acc;
}

// What a User looks like on the way out: its groups (read-only,
// RFC 7643 4.1.2) are computed from the groups' members, indexed once
// per request (members of every group, not every group per user).
function memberships() {
	const m = new Map();
	for (const g of store.Groups)
		for (const mb of (g.members || [])) {
			if (!m.has(mb.value))
				m.set(mb.value, []);
			m.get(mb.value).push({value: g.id, display: g.displayName,
			    type: "direct"});
		}
	return m;
}

function userOut(u, m) {
	const o = clone(u);
	const groups = m.get(u.id);
	if (groups)
		o.groups = groups;
	return o;
}

function egress(kind) {
	return (resource) => {
		const m = kind === "Users" ? memberships() : null;
		const out = kind === "Users" ? (o) => userOut(o, m) : clone;
		if (resource.id) {
			const o = find(kind, resource.id);
			if (!o || !visible(o))
				throw new SCIMMY.Types.Error(404, null,
				    `Resource ${resource.id} not found`);
			return out(o);
		}
		const all = store[kind].filter(visible).map(out);
		return resource.filter ? resource.filter.match(all) : all;
	};
}

function ingress(kind) {
	return (resource, instance) => {
		const data = clone(instance);
		delete data.id;
		delete data.meta;
		delete data.groups;
		const old = resource.id ? find(kind, resource.id) : null;
		if (resource.id && !old)
			throw new SCIMMY.Types.Error(404, null,
			    `Resource ${resource.id} not found`);
		const key = kind === "Users" ? "userName" : "displayName";
		const v = String(data[key] ?? "").toLowerCase();
		if (store[kind].some(o => o !== old && visible(o) &&
		    String(o[key] ?? "").toLowerCase() === v))
			throw new SCIMMY.Types.Error(409, "uniqueness",
			    `${key} '${data[key]}' is already in use`);
		if (kind === "Groups")
			for (const m of data.members || [])
				if (!find("Users", m.value) && !find("Groups", m.value))
					throw new SCIMMY.Types.Error(400, "invalidValue",
					    `member '${m.value}' does not exist`);
		if (old) {
			if (content(old) === content(data))
				return clone(old);
			data.id = old.id;
			stamp(kind, data, old);
			store[kind][store[kind].indexOf(old)] = data;
		} else {
			data.id = newId();
			stamp(kind, data, null);
			store[kind].push(data);
			if (faults.hide_new > 0)
				appears.set(data.id, Date.now() +
				    1000 * Number(faults.hide_new));
		}
		return clone(data);
	};
}

function degress(kind) {
	return (resource) => {
		const o = find(kind, resource.id);
		if (!o)
			throw new SCIMMY.Types.Error(404, null,
			    `Resource ${resource.id} not found`);
		store[kind] = store[kind].filter(x => x !== o);
		// A deleted user or group leaves the groups it was in.
		for (const g of store.Groups)
			if (g.members && g.members.some(m => m.value === o.id)) {
				g.members = g.members.filter(m => m.value !== o.id);
				stamp("Groups", g, g);
			}
		version++;
	};
}

SCIMMY.Schemas.User.definition.extend(SCIMMY.Schemas.EnterpriseUser.definition, false);
SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .ingress(ingress("Users")).egress(egress("Users")).degress(degress("Users"));
SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress(ingress("Groups")).egress(egress("Groups")).degress(degress("Groups"));

const app = express();
app.disable("x-powered-by");
app.disable("etag");	// express's own ETags would hash the body

function scimError(res, status, detail, extra) {
	res.status(status).set("Content-Type", "application/scim+json");
	if (extra)
		res.set(extra);
	res.send(JSON.stringify({
		schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"],
		status: String(status), detail: detail
	}));
}

// The log: one entry per request served (tokens never logged).
app.use((req, res, next) => {
	if (req.path === "/_scim/log")
		return next();
	const e = {seq: ++seq, time: new Date().toISOString(),
	    method: req.method, path: req.originalUrl,
	    authorization: !!req.headers.authorization,
	    headers: {}, body: null, status: null, fault: null};
	for (const h of ["content-type", "accept", "if-match", "if-none-match"])
		if (req.headers[h] !== undefined)
			e.headers[h] = req.headers[h];
	if (req.path.startsWith("/_scim/"))
		e.control = true;
	req.logEntry = e;
	const chunks = [];
	req.on("data", (c) => chunks.push(c));
	req.on("end", () => {
		const raw = Buffer.concat(chunks).toString("utf8");
		if (raw) {
			try { e.body = JSON.parse(raw); } catch { e.body = raw; }
		}
	});
	// What a listing returned: the attributes its resources carry.
	const send = res.send;
	res.send = function (body) {
		let j = body;
		try {
			if (typeof body === "string" || Buffer.isBuffer(body))
				j = JSON.parse(String(body));
		} catch {
			j = null;
		}
		if (j && Array.isArray(j.Resources))
			e.returned = [...new Set(j.Resources.flatMap(
			    r => Object.keys(r)))].sort();
		return send.apply(this, arguments);
	};
	let logged = false;
	const done = () => {
		if (logged)
			return;
		logged = true;
		logEntries.push(e);
		if (opt.log)
			fs.appendFileSync(opt.log, JSON.stringify(e) + "\n");
	};
	res.on("finish", () => { e.status = res.statusCode; done(); });
	res.on("close", done);
	next();
});

// The control API: no token, never faulted.
const ctl = express.Router();
ctl.use(express.json({limit: "256mb"}));
ctl.get("/health", (req, res) => res.json({ok: true, port: server.address().port}));
ctl.get("/log", (req, res) => {
	const since = Number(req.query.since || 0);
	res.json(logEntries.filter(e => e.seq > since));
});
ctl.get("/state", (req, res) => res.json({users: store.Users,
    groups: store.Groups, version: version}));
ctl.get("/faults", (req, res) => res.json(faults));
ctl.post("/faults", (req, res) => {
	for (const k of Object.keys(req.body || {})) {
		if (!(k in faults))
			return res.status(400).json({error: `unknown key '${k}'`});
		faults[k] = req.body[k];
		if (k === "random" && faults.random)
			rngState = Number(faults.random.seed || 1) >>> 0;
	}
	for (const r of faults.rules)
		if (r.times === undefined)
			r.times = 1;
	res.json(faults);
});
ctl.post("/reset", (req, res) => {
	store = {Users: [], Groups: []};
	logEntries = [];
	faults = {rules: [], max_count: opt.maxCount, random: null,
	    hide_new: 0, ignore_attributes: false};
	appears = new Map();
	res.json({ok: true});
});
// Loads objects as given (an id may be given), without scimmy's checks,
// so that a test can set up what a client could not create.  "front":
// true puts them before the others in list order.
function seed(body) {
	const ids = {users: [], groups: []};
	for (const [k, kind] of [["users", "Users"], ["groups", "Groups"]])
		for (const o of (body[k] || [])) {
			const obj = clone(o);
			obj.id = obj.id || newId();
			obj.schemas = obj.schemas || [kind === "Users" ?
			    "urn:ietf:params:scim:schemas:core:2.0:User" :
			    "urn:ietf:params:scim:schemas:core:2.0:Group"];
			stamp(kind, obj, null);
			if (body.front)
				store[kind].unshift(obj);
			else
				store[kind].push(obj);
			ids[k].push(obj.id);
		}
	return ids;
}
ctl.post("/seed", (req, res) => res.json({ids: seed(req.body || {})}));
app.use("/_scim", ctl);

// mulberry32: the random faults are the same for the same seed and the
// same order of requests.
function rng() {
	let t = (rngState = (rngState + 0x6d2b79f5) >>> 0);
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// The random faults: "random": {"seed", "methods", "path", "p":
// {action: probability, ...}, "retry_after"} strikes a request that no
// rule matched with each action at its probability.
function randomFault(req) {
	const f = faults.random;
	if (!f || (f.methods && !f.methods.includes(req.method)) ||
	    (f.path && !new RegExp(f.path).test(req.originalUrl)))
		return null;
	const x = rng();
	let acc = 0;
	for (const [action, p] of Object.entries(f.p || {})) {
		acc += Number(p);
		if (x < acc)
			return {action: action, retry_after: f.retry_after};
	}
	return null;
}

// Scripted faults: each rule fails the next `times` requests whose
// method and path (regular expression over the path with its query)
// match.
app.use((req, res, next) => {
	let r = faults.rules.find(x => x.times > 0 &&
	    (!x.method || x.method === req.method) &&
	    (!x.path || new RegExp(x.path).test(req.originalUrl)));
	if (r)
		r.times--;
	else if ((r = randomFault(req)) === null)
		return next();
	const e = req.logEntry;
	e.fault = String(r.action);
	const after = /^([0-9]{3})_after$/.exec(String(r.action));
	if (after) {
		// Run the request, then answer with that status instead of
		// its own: a gateway that lost the answer of a request that
		// ran.
		const send = res.send;
		res.send = function () {
			e.applied_status = res.statusCode;
			res.send = send;
			res.removeHeader("ETag");
			res.removeHeader("Location");
			return scimError(res, Number(after[1]),
			    "injected fault after the request ran");
		};
		return next();
	}
	switch (String(r.action)) {
	case "touch": {
		// Another writer got there first: the object of the path
		// takes the attributes of "set" (none: its content stays)
		// and a new version, then the request is served.
		const m = /^\/(Users|Groups)\/([^/?]+)$/.exec(req.path);
		const o = m && find(m[1], decodeURIComponent(m[2]));
		if (o) {
			Object.assign(o, clone(r.set || {}));
			stamp(m[1], o, o);
		}
		return next();
	}
	case "drop":
		req.socket.destroy();
		return;
	case "drop_after":
		// Run the request, then close the connection instead of
		// answering: the client cannot know that it ran.
		res.end = function () {
			e.applied_status = res.statusCode;
			req.socket.destroy();
			return res;
		};
		return next();
	case "shift":
		// Insert objects at the front, then serve the request: the
		// pages of a listing in progress shift by that many.
		seed({...(r.seed || {}), front: true});
		return next();
	case "429":
	case "503":
		return scimError(res, Number(r.action), "injected fault",
		    {"Retry-After": String(r.retry_after ?? 1)});
	default:
		return scimError(res, Number(r.action) || 500, "injected fault");
	}
});

// A server may send fewer than count (RFC 7644 3.4.2.4): max_count caps
// the page size whatever the client asked.  ignore_attributes: a server
// that returns every attribute whatever attributes= asks (the log keeps
// the query as it came).
app.use((req, res, next) => {
	if (faults.ignore_attributes)
		delete req.query.attributes;
	if (faults.max_count > 0 && req.method === "GET") {
		const c = Number(req.query.count ?? 20);
		if (!(c <= faults.max_count))
			req.query.count = String(faults.max_count);
	}
	next();
});

// ETags (RFC 7644 3.14): scimmy-routers neither sends ETag nor checks
// If-Match, so this does both, from meta.version.
app.use((req, res, next) => {
	const m = /^\/(Users|Groups)\/([^/?]+)$/.exec(req.path);
	if (m && req.headers.authorization === `Bearer ${TOKEN}`) {
		const o = find(m[1], decodeURIComponent(m[2]));
		const im = req.headers["if-match"];
		if (o && im !== undefined && req.method !== "GET" &&
		    im !== "*" && !im.split(/\s*,\s*/).includes(o.meta.version))
			return scimError(res, 412,
			    `If-Match ${im} does not match ${o.meta.version}`);
		const inm = req.headers["if-none-match"];
		if (o && inm !== undefined && req.method === "GET" &&
		    inm.split(/\s*,\s*/).includes(o.meta.version))
			return res.status(304).end();
	}
	const send = res.send;
	res.send = function (body) {
		const b = (typeof body === "object" && body !== null) ? body : null;
		if (b && b.meta && b.meta.version && !b.Resources)
			res.set("ETag", b.meta.version);
		return send.call(this, body);
	};
	next();
});

// --no-patch: a service without PATCH (RFC 7643 5: patch.supported
// false), whose clients must PUT whole resources.
if (opt.noPatch)
	app.use((req, res, next) => {
		if (req.method === "PATCH")
			return scimError(res, 501, "PATCH is not supported");
		if (req.method === "GET" && req.path === "/ServiceProviderConfig") {
			const send = res.send;
			res.send = function (body) {
				const j = JSON.parse(typeof body === "string" ?
				    body : JSON.stringify(body));
				j.patch = {supported: false};
				res.send = send;
				return send.call(this, j);
			};
		}
		next();
	});

app.use(new SCIMMYRouters({
	type: "bearer",
	docUri: "https://example.invalid/scim-test-server",
	handler: (req) => {
		if (req.headers.authorization !== `Bearer ${TOKEN}`)
			throw new Error("Authorization failure");
		return "admin";
	},
	baseUri: (req) => `${opt.tlsCert ? "https" : "http"}://${req.headers.host}`
}));

const server = (opt.tlsCert ? require("https").createServer({
	cert: fs.readFileSync(opt.tlsCert), key: fs.readFileSync(opt.tlsKey)
}, app) : require("http").createServer(app));
server.listen(opt.port, opt.bind, () => {
	if (opt.portFile) {
		const tmp = opt.portFile + ".tmp";
		fs.writeFileSync(tmp, String(server.address().port) + "\n");
		fs.renameSync(tmp, opt.portFile);
	}
});
server.keepAliveTimeout = 5000;
for (const sig of ["SIGTERM", "SIGINT"])
	process.on(sig, () => { server.close(); process.exit(0); });

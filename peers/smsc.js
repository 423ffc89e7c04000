#!/usr/bin/env node
// A loopback SMSC for tests and the demo, built on node-smpp's server side.
//
//   node peers/smsc.js [--host 127.0.0.1] [--port 0] [--control-port 0]
//        [--system-id kefu] [--password secret] [--config '{"receipt_delay_ms": 50}'] [--exit-on-stdin-close]
//
// Options may also come from SMSC_HOST, SMSC_PORT, SMSC_CONTROL_PORT, SMSC_SYSTEM_ID, SMSC_PASSWORD,
// SMSC_CONFIG. Port 0 picks a free port. When both servers listen it prints one JSON line:
//   {"smpp_port": 40123, "control_port": 40124}
// SMPP: binds, submit_sm (with receipts), query_sm (answered from the store), enquire_link, unbind.
// Control API (JSON over HTTP): GET /messages (reassembled, in order), GET /parts, GET /stats,
// GET /config, POST /config {...}, POST /reset, POST /mo {from, to, text}, POST /receipt
// {message_id, stat}, POST /drop (hang up every session now, once what it read is answered).
// Like a real SMSC it stores deliver_sm (receipts, MO) until a receiver is bound and acknowledges them.
'use strict';

const http = require('http');
let smpp;
try {
  smpp = require('smpp'); // resolved from the repository's node_modules, whatever the cwd
} catch (err) {
  process.stderr.write('smsc.js: node-smpp is not installed (run npm ci in the repository root)\n');
  process.exit(2);
}

const DEFAULTS = {
  throttle_every: 0,          // answer every Nth submit_sm (counted from this setting) with ESME_RTHROTTLED
  drop_after: 0,              // close the connection right after the Nth accepted submit_sm_resp, once
  receipts: true,             // send a delivery receipt when registered_delivery asks for one
  receipt_delay_ms: 50,
  receipt_stat: 'DELIVRD',
  receipt_stat_by_destination: {},   // {"13800000002": "UNDELIV"}
  reject_destinations: {},           // {"13800000003": "ESME_RINVDSTADR"}: submit_sm_resp error status
  refuse_all_binds: false,    // answer every bind with ESME_RBINDFAIL
  response_delay_ms: 0,       // hold each submit_sm_resp this long (to see the client's window at work)
  receipt_route: 'first',     // 'other': a receipt goes to a bound session other than the one that submitted
                              // (as SMSCs spread deliver_sm over an account's binds), if there is one
  // password: 'other'        // set to change the accepted password (as an operator might)
};
const MESSAGE_STATES = {DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8};
// Characters with the same code in GSM 03.38 and ASCII: such text may go in data_coding 0.
const PLAIN = /^[A-Za-z0-9 \n\r!"#%&'()*+,\-./:;<=>?]*$/;

const options = parseOptions(process.argv.slice(2));
let config, counters, stats, parts, messages, partial, nextId, undelivered;
reset();

function reset() {
  config = JSON.parse(JSON.stringify({...DEFAULTS, ...options.config}));
  counters = {throttle: 0, drop: 0};
  stats = {sessions: 0, binds: 0, bind_failures: 0, submits: 0, accepted: 0, rejected: 0, throttled: 0,
           drops: 0, queries: 0, max_outstanding: 0, enquire_links: 0, unbinds: 0, receipts_sent: 0, mo_sent: 0, deliver_sm_resp: 0};
  parts = [];
  messages = [];
  partial = new Map();        // concatenation key -> {parts: [], received}
  nextId = 1;
  undelivered = [];           // deliver_sm waiting for a bound receiver (store and forward)
}

function parseOptions(argv) {
  const env = process.env;
  const opts = {
    host: env.SMSC_HOST || '127.0.0.1', port: Number(env.SMSC_PORT || 0),
    controlPort: Number(env.SMSC_CONTROL_PORT || 0), systemId: env.SMSC_SYSTEM_ID || 'kefu',
    password: env.SMSC_PASSWORD || 'secret', config: JSON.parse(env.SMSC_CONFIG || '{}'), exitOnStdinClose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const [key, value] = argv[i].replace(/^--/, '').split(/=(.*)/s);
    const take = () => (value !== undefined ? value : argv[++i]);
    if (key === 'host') opts.host = take();
    else if (key === 'port') opts.port = Number(take());
    else if (key === 'control-port') opts.controlPort = Number(take());
    else if (key === 'system-id') opts.systemId = take();
    else if (key === 'password') opts.password = take();
    else if (key === 'config') opts.config = JSON.parse(take());
    else if (key === 'exit-on-stdin-close') opts.exitOnStdinClose = true;
    else throw new Error('unknown option ' + argv[i]);
  }
  return opts;
}

// --- SMPP side -----------------------------------------------------------------------------------

const server = smpp.createServer((session) => {
  stats.sessions++;
  session.on('error', (err) => {  // a client vanishing is business as usual here
    if (!['ECONNRESET', 'EPIPE'].includes(err.code)) process.stderr.write('smsc.js: ' + err.message + '\n');
  });
  for (const command of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) {
    session.on(command, (pdu) => bind(session, command, pdu));
  }
  session.on('submit_sm', (pdu) => submit(session, pdu));
  session.on('query_sm', (pdu) => query(session, pdu));
  session.on('deliver_sm_resp', () => stats.deliver_sm_resp++);
  session.on('enquire_link', (pdu) => {
    stats.enquire_links++;
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    stats.unbinds++;
    session.bound = null;
    session.send(pdu.response(), () => session.close());
  });
  session.on('unknown', (pdu) => session.send(pdu.response()));
  session.on('close', () => {  // like a real SMSC, deliver again what this session did not acknowledge
    session.bound = null;
    undelivered.push(...(session.unacked || []));
    flush();
  });
});

function bind(session, command, pdu) {
  let status = 0;
  if (config.refuse_all_binds) status = smpp.ESME_RBINDFAIL;
  else if (pdu.system_id !== options.systemId) status = smpp.ESME_RINVSYSID;
  else if (pdu.password !== (config.password ?? options.password)) status = smpp.ESME_RINVPASWD;
  if (status) {
    stats.bind_failures++;
    session.send(pdu.response({command_status: status}), () => session.close());
    return;
  }
  stats.binds++;
  session.bound = command;
  session.send(pdu.response({system_id: 'KEFU-SMSC'}));
  flush();
}

function submit(session, pdu) {
  if (!session.bound || session.bound === 'bind_receiver') {
    session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
    return;
  }
  stats.submits++;
  if (config.throttle_every && ++counters.throttle % config.throttle_every === 0) {
    stats.throttled++;
    respond(session, pdu.response({command_status: smpp.ESME_RTHROTTLED}));
    return;
  }
  const rejection = config.reject_destinations[pdu.destination_addr];
  if (rejection) {
    stats.rejected++;
    respond(session, pdu.response({command_status: smpp[rejection] || smpp.ESME_RSUBMITFAIL}));
    return;
  }
  const part = record(pdu);
  stats.accepted++;
  if (config.drop_after && ++counters.drop >= config.drop_after) {
    // Read nothing more from this session and close it once every response is flushed: each part
    // the SMSC recorded was acknowledged, so a client retrying only unanswered parts duplicates none.
    config.drop_after = 0;
    stats.drops++;
    session.pause();
    session.dropWhenFlushed = true;
  }
  respond(session, pdu.response({message_id: part.message_id}));
  const wanted = pdu.registered_delivery & 0x03;  // 1: any final outcome, 2: failures only
  const stat = config.receipt_stat_by_destination[part.destination] || config.receipt_stat;
  setTimeout(() => Object.assign(part, {state: stat, final_at: new Date()}), config.receipt_delay_ms);
  if (config.receipts && (wanted === 1 || (wanted === 2 && stat !== 'DELIVRD'))) {
    setTimeout(() => deliver(receiptPdu(part, stat), session), config.receipt_delay_ms);
  }
}

// query_sm: the state of a message this SMSC accepted from that source (the newest with that id),
// or ESME_RQUERYFAIL when it has none — answered from the same store as /parts.
function query(session, pdu) {
  stats.queries++;
  if (!session.bound || session.bound === 'bind_receiver') {
    session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
    return;
  }
  const part = parts.slice().reverse().find((p) => p.message_id === pdu.message_id && p.source === pdu.source_addr);
  if (!part) {
    session.send(pdu.response({command_status: smpp.ESME_RQUERYFAIL}));
    return;
  }
  const state = part.state ? (MESSAGE_STATES[part.state] || MESSAGE_STATES.UNKNOWN) : 1;  // 1: ENROUTE
  session.send(pdu.response({message_id: part.message_id, final_date: part.final_at || '',
                             message_state: state, error_code: state === 2 || state === 1 ? 0 : 1}));
}

// Answer a submit_sm, after response_delay_ms if set; tracks how many were awaiting an answer at once.
function respond(session, response) {
  session.outstanding = (session.outstanding || 0) + 1;
  stats.max_outstanding = Math.max(stats.max_outstanding, session.outstanding);
  const send = () => session.send(response, () => {
    session.outstanding--;
    if (session.dropWhenFlushed && session.outstanding === 0) hangUp(session);
  });
  if (config.response_delay_ms) setTimeout(send, config.response_delay_ms);
  else send();
}

function record(pdu) {
  const sm = pdu.short_message || {};
  const concat = concatInfo(sm.udh || []);
  const part = {
    message_id: String(nextId++).padStart(10, '0'), source: pdu.source_addr, destination: pdu.destination_addr,
    data_coding: pdu.data_coding, esm_class: pdu.esm_class, registered_delivery: pdu.registered_delivery,
    text: typeof sm.message === 'string' ? sm.message : String(sm.message || ''),
    reference: concat ? concat.reference : null, part: concat ? concat.part : 1, total: concat ? concat.total : 1,
    submitted_at: new Date(),
  };
  parts.push(part);
  if (!concat) {
    messages.push(whole([part]));
    return part;
  }
  const key = [part.source, part.destination, concat.reference, concat.total].join('|');
  const group = partial.get(key) || [];
  group[concat.part - 1] = part;
  partial.set(key, group);
  if (group.filter(Boolean).length === concat.total) {
    partial.delete(key);
    messages.push(whole(group));
  }
  return part;
}

function whole(group) {
  const first = group[0];
  return {message_ids: group.map((p) => p.message_id), source: first.source, destination: first.destination,
          data_coding: first.data_coding, text: group.map((p) => p.text).join(''), parts: group.length};
}

function concatInfo(udhList) {
  for (const udh of udhList) {  // each element: [IEI, length, ...value]
    if (udh[0] === 0x00 && udh[1] === 3) return {reference: udh[2], total: udh[3], part: udh[4]};
    if (udh[0] === 0x08 && udh[1] === 4) return {reference: udh.readUInt16BE(2), total: udh[4], part: udh[5]};
  }
  return null;
}

function receiptPdu(part, stat) {
  const done = smsDate(new Date());
  const delivered = stat === 'DELIVRD' ? '001' : '000';
  const text = `id:${part.message_id} sub:001 dlvrd:${delivered} submit date:${smsDate(part.submitted_at)} ` +
               `done date:${done} stat:${stat} err:${stat === 'DELIVRD' ? '000' : '001'} text:`;
  stats.receipts_sent++;
  return {source_addr: part.destination, destination_addr: part.source, esm_class: 0x04, data_coding: 0,
          short_message: Buffer.from(text, 'ascii'), receipted_message_id: part.message_id,
          message_state: MESSAGE_STATES[stat] || MESSAGE_STATES.UNKNOWN};
}

function smsDate(d) {  // YYMMDDhhmm
  const two = (n) => String(n).padStart(2, '0');
  return two(d.getFullYear() % 100) + two(d.getMonth() + 1) + two(d.getDate()) + two(d.getHours()) +
         two(d.getMinutes());
}

// MO text as deliver_sm PDUs: default alphabet if plain, else UCS2; split behind a UDH if long.
let moReference = 0;
function moPdus(from, to, text) {
  const plain = PLAIN.test(text);
  const data = plain ? Buffer.from(text, 'ascii') : Buffer.from(text, 'utf16le').swap16();
  const [whole, perPart] = plain ? [160, 153] : [140, 134];
  const base = {source_addr: from, destination_addr: to, data_coding: plain ? 0 : 8};
  if (data.length <= whole) return [{...base, esm_class: 0, short_message: data}];
  const chunks = [];
  for (let start = 0; start < data.length;) {
    let end = Math.min(start + perPart, data.length);
    if (!plain && end < data.length && data[end - 2] >= 0xD8 && data[end - 2] <= 0xDB) end -= 2;
    chunks.push(data.subarray(start, end));
    start = end;
  }
  const ref = moReference = (moReference + 1) % 256;
  return chunks.map((chunk, i) => ({...base, esm_class: 0x40,
    short_message: Buffer.concat([Buffer.from([5, 0, 3, ref, chunks.length, i + 1]), chunk])}));
}

// Close with a FIN, not destroy(): closing with unread input sends a RST, and a RST makes the
// client's kernel discard responses it has received but not yet read.
function hangUp(session) {
  session.socket.end();
  setTimeout(() => session.socket.destroy(), 1000).unref();
}

function receivers() {
  return server.sessions.filter((s) => !s.dropWhenFlushed &&
    (s.bound === 'bind_transceiver' || s.bound === 'bind_receiver'));
}

const submitters = new WeakMap();  // receipt fields -> the session that submitted the message

function deliver(fields, submitter) {  // to a bound receiver now, or once one binds; again if not acknowledged
  if (submitter) submitters.set(fields, submitter);
  const bound = receivers();
  const avoid = config.receipt_route === 'other' ? submitters.get(fields) : undefined;
  const session = bound.find((s) => s !== avoid) || bound[0];
  if (!session) {
    undelivered.push(fields);
    return false;
  }
  session.unacked = session.unacked || new Set();
  session.unacked.add(fields);
  session.deliver_sm(fields, () => session.unacked.delete(fields));
  return true;
}

function flush() {
  const waiting = undelivered;
  undelivered = [];
  waiting.forEach((fields) => deliver(fields));
}

// --- control side --------------------------------------------------------------------------------

const routes = {
  'GET /messages': () => messages,
  'GET /parts': () => parts,
  'GET /stats': () => ({...stats, bound: receivers().length, pending_concatenations: partial.size,
                        undelivered: undelivered.length}),
  'GET /config': () => config,
  'POST /config': (body) => {
    Object.assign(config, body);
    if ('throttle_every' in body) counters.throttle = 0;
    if ('drop_after' in body) counters.drop = 0;
    return config;
  },
  'POST /reset': () => {
    reset();
    return {ok: true};
  },
  'POST /mo': (body) => {
    const pdus = moPdus(String(body.from), String(body.to), String(body.text));
    stats.mo_sent++;
    const sent = pdus.map((pdu) => deliver(pdu)).every(Boolean);
    return {parts: pdus.length, queued: !sent};
  },
  'POST /receipt': (body) => {
    const part = parts.find((p) => p.message_id === body.message_id);
    if (!part) return [404, {error: 'unknown message_id ' + body.message_id}];
    return {queued: !deliver(receiptPdu(part, body.stat || 'DELIVRD'))};
  },
  'POST /drop': () => {
    const sessions = server.sessions.slice();
    sessions.forEach((s) => {  // as drop_after: answer what was read, read nothing more, hang up
      s.pause();
      s.dropWhenFlushed = true;
      if (!s.outstanding) hangUp(s);
    });
    stats.drops += sessions.length;
    return {dropped: sessions.length};
  },
};

const control = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (chunk) => (raw += chunk));
  req.on('end', () => {
    const route = routes[req.method + ' ' + req.url.split('?')[0]];
    let status = 200, result;
    try {
      result = route ? route(raw ? JSON.parse(raw) : {}) : [404, {error: 'no route ' + req.method + ' ' + req.url}];
    } catch (err) {
      result = [400, {error: err.message}];
    }
    if (Array.isArray(result) && typeof result[0] === 'number') [status, result] = result;
    res.writeHead(status, {'Content-Type': 'application/json; charset=utf-8'});
    res.end(JSON.stringify(result));
  });
});

server.listen(options.port, options.host, () => {
  control.listen(options.controlPort, options.host, () => {
    process.stdout.write(JSON.stringify({smpp_port: server.address().port,
                                         control_port: control.address().port}) + '\n');
  });
});

if (options.exitOnStdinClose) {  // die with the test process that started us
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));

#!/usr/bin/env node
// Minimal SMSC (SMPP 3.4 server side) on top of the npm package `smpp` (node-smpp 0.5.1,
// https://github.com/farhadi/node-smpp). The PDU codec, framing and session handling are
// node-smpp's; this file only adds SMSC behaviour for tests:
//   - accepts bind_transceiver / bind_transmitter / bind_receiver (optionally checks credentials)
//   - answers submit_sm with a message_id (hex counter)
//   - when registered_delivery & 1: sends a delivery receipt deliver_sm (esm_class 0x04, standard
//     "id:.. sub:001 dlvrd:001 submit date:.. done date:.. stat:DELIVRD err:000 text:.." body,
//     plus receipted_message_id and message_state TLVs) after DLR_DELAY_MS
//   - destination ending in "0000" -> receipt stat:UNDELIV err:001 (message_state 5)
//   - answers enquire_link, unbind; generic_nack for anything it does not handle
//   - a tiny HTTP control API (127.0.0.1:CONTROL_PORT) for tests:
//       GET  /health                      -> {"ok":true,"sessions":N}
//       GET  /messages                    -> every submit_sm received (decoded, with UDH info)
//       POST /mo {"from","to","text","data_coding"?}  -> inject an MO deliver_sm to every bound
//                                            receiver/transceiver session; replies with the resps
//       POST /throttle {"count":N,"status":88}  -> answer the next N submit_sm with that status
//                                            (default 0x58 ESME_RTHROTTLED)
//       POST /drop                        -> destroy every client TCP connection (no unbind)
//       POST /unbind                      -> send unbind to every session (server-initiated)
//       POST /reset                       -> forget messages and throttle state
//       POST /hang {"ms":N}               -> stop answering submit_sm for N ms (a frozen gateway),
//                                            then answer the held ones (where the session still
//                                            lives) and deliver them (receipts as below)
//       POST /dlr-mode {"mode":"deliver_sm"|"data_sm"}  -> how receipts are sent
//       POST /dlr-first {"on":true|false} -> send the receipt before the submit_sm_resp
//       POST /quota {"tps":N}             -> steady throttling: answer 0x58 to submits beyond N
//                                            accepted per second (per wall-clock second); 0 = off
//   MOs and receipts go round-robin over every receiver/transceiver bind of the account
//   (system_id), as Jasmin does; a receipt with no such bind waits for the next one.
//   /mo also takes "sar": {"ref","total","seq"} (SAR TLVs) and "account" (a system_id).
// Env: SMSC_HOST (127.0.0.1) SMSC_PORT (2775) CONTROL_PORT (8775) SMSC_SYSTEM_ID / SMSC_PASSWORD
//      (unset = accept any), DLR_DELAY_MS (200), SMSC_NAGLE=1 (leave Nagle on; default off)
'use strict';
const smpp = require('smpp');
const http = require('http');

const HOST = process.env.SMSC_HOST || '127.0.0.1';
const PORT = parseInt(process.env.SMSC_PORT || '2775', 10);
const CONTROL_PORT = parseInt(process.env.CONTROL_PORT || '8775', 10);
const SYSTEM_ID = process.env.SMSC_SYSTEM_ID || '';
const PASSWORD = process.env.SMSC_PASSWORD || '';
const DLR_DELAY_MS = parseInt(process.env.DLR_DELAY_MS || '200', 10);

// SMSC_FIRST_ID (hex): a soak resumed on a kept store starts past the ids it already holds
let nextId = parseInt(process.env.SMSC_FIRST_ID || '1000', 16);
let messages = [];
let throttle = {count: 0, status: smpp.ESME_RTHROTTLED};
const sessions = new Set();
let hangUntil = 0;             // submit_sm answers held until this time (ms epoch)
let held = [];                 // [{session, pdu}] waiting for the hang to end
let hangTimer = null;
let dlrMode = 'deliver_sm';
let dlrFirst = false;
let quota = {tps: 0, second: 0, used: 0};
const rr = new Map();          // system_id -> round-robin counter
let waitingDlr = [];           // receipts for an account with no receiving bind yet
const stats = {quota_throttled: 0, submit_sm: 0, deliver_sm_resp: 0, unbind_resp: 0, enquire_link: 0, binds: 0};

function log(obj) {
  process.stdout.write(JSON.stringify(Object.assign({t: new Date().toISOString()}, obj)) + '\n');
}

function smppDate(d) { // YYMMDDhhmm as used in receipt bodies
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

function decodeUdh(udhList) {
  // 8-bit (IEI 0x00) and 16-bit (IEI 0x08) concatenation references
  for (const u of udhList || []) {
    if (u[0] === 0x00 && u.length >= 5) return {ref: u[2], total: u[3], seq: u[4]};
    if (u[0] === 0x08 && u.length >= 6) return {ref: u.readUInt16BE(2), total: u[4], seq: u[5]};
  }
  return null;
}

function textOf(pdu) {
  const sm = pdu.short_message;
  // pbx-textback change: a long text sent as message_payload comes with an empty short_message
  // (decoded by node-smpp as {message: ''}): report the payload then.
  const smEmpty = !sm || (typeof sm === 'object' && !Buffer.isBuffer(sm) && !(sm.message && sm.message.length));
  if (smEmpty && pdu.message_payload) {
    const mp = pdu.message_payload;
    return {text: typeof mp === 'object' && mp.message !== undefined ? String(mp.message) : String(mp), udh: null};
  }
  if (sm && typeof sm === 'object' && !Buffer.isBuffer(sm)) {
    const msg = sm.message;
    return {text: Buffer.isBuffer(msg) ? msg.toString('hex') : String(msg), udh: decodeUdh(sm.udh)};
  }
  if (pdu.message_payload) {
    const mp = pdu.message_payload;
    return {text: typeof mp === 'object' && mp.message !== undefined ? String(mp.message) : String(mp), udh: null};
  }
  return {text: Buffer.isBuffer(sm) ? sm.toString('hex') : String(sm || ''), udh: null};
}

// The next receiving bind of the account, round-robin (Jasmin spreads MOs and receipts so).
function receiverOf(systemId) {
  const binds = [...sessions].filter((x) => (x.bound === 'transceiver' || x.bound === 'receiver')
    && x.socket.writable && (systemId === undefined || x.system_id === systemId));
  if (!binds.length) return null;
  const n = rr.get(systemId) || 0;
  rr.set(systemId, n + 1);
  return binds[n % binds.length];
}

function receipt(_session, rec) {
  const undeliv = /0000$/.test(rec.destination_addr);
  const stat = undeliv ? 'UNDELIV' : 'DELIVRD';
  const err = undeliv ? '001' : '000';
  const now = new Date();
  // The text: field carries the first 20 characters of the original message (GSM-safe ASCII).
  const text = (rec.text || '').replace(/[^\x20-\x7e]/g, '?').slice(0, 20);
  const body = `id:${rec.message_id} sub:001 dlvrd:${undeliv ? '000' : '001'} ` +
    `submit date:${smppDate(rec.received)} done date:${smppDate(now)} stat:${stat} err:${err} text:${text}`;
  const session = receiverOf(rec.system_id);
  if (!session) { waitingDlr.push(rec); log({ev: 'dlr_waiting', id: rec.message_id}); return; }
  const pdu = {
    service_type: '',
    source_addr_ton: rec.dest_addr_ton, source_addr_npi: rec.dest_addr_npi,
    source_addr: rec.destination_addr,
    dest_addr_ton: rec.source_addr_ton, dest_addr_npi: rec.source_addr_npi,
    destination_addr: rec.source_addr,
    esm_class: 0x04, data_coding: 0,
    short_message: body,
    receipted_message_id: rec.message_id,
    message_state: undeliv ? 5 : 2,
  };
  if (dlrMode === 'data_sm') {       // data_sm has no short_message: the text rides in the payload
    delete pdu.short_message; delete pdu.replace_if_present_flag;
    pdu.message_payload = body;
    pdu.registered_delivery = 0;
  }
  session[dlrMode](pdu, (resp) => {
    log({ev: 'dlr_resp', id: rec.message_id, status: resp.command_status, via: dlrMode});
  });
  log({ev: 'dlr_sent', id: rec.message_id, body, via: dlrMode});
}

function endHang() {
  const h = held; held = [];
  hangUntil = 0;
  log({ev: 'hang_end', held: h.length});
  for (const {session, pdu} of h) session.accept(session, pdu);
}

const server = smpp.createServer((session) => {
  // pbx-textback change: no Nagle, as SMSCs run. With Nagle, node holds each answer until the
  // previous one is ACKed, and delayed ACKs then cap a windowed client at ~one burst per 40 ms.
  if (process.env.SMSC_NAGLE !== '1') session.socket.setNoDelay(true);
  sessions.add(session);
  session.bound = null;
  log({ev: 'connect', remote: session.socket.remoteAddress + ':' + session.socket.remotePort});
  session.on('close', () => { sessions.delete(session); log({ev: 'close'}); });
  session.on('error', (e) => { log({ev: 'socket_error', err: String(e)}); });

  const onBind = (kind) => (pdu) => {
    if (SYSTEM_ID && (pdu.system_id !== SYSTEM_ID || pdu.password !== PASSWORD)) {
      session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
      log({ev: 'bind_rejected', kind, system_id: pdu.system_id});
      return;
    }
    session.bound = kind;
    stats.binds++;
    session.system_id = pdu.system_id;
    session.send(pdu.response({system_id: 'node-smsc'}));
    log({ev: 'bind', kind, system_id: pdu.system_id});
    if (kind !== 'transmitter' && waitingDlr.length) {
      const w = waitingDlr; waitingDlr = [];
      setTimeout(() => w.forEach((rec) => receipt(null, rec)), 20);
    }
  };
  session.on('bind_transceiver', onBind('transceiver'));
  session.on('bind_transmitter', onBind('transmitter'));
  session.on('bind_receiver', onBind('receiver'));

  session.on('enquire_link', (pdu) => {
    stats.enquire_link++;
    session.send(pdu.response());
    log({ev: 'enquire_link', seq: pdu.sequence_number});
  });
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    log({ev: 'unbind'});
    session.close();
  });
  session.on('unbind_resp', () => { stats.unbind_resp++; log({ev: 'unbind_resp'}); session.close(); });
  session.on('deliver_sm_resp', () => { stats.deliver_sm_resp++; });
  session.on('enquire_link_resp', () => {});

  session.accept = accept;
  session.on('submit_sm', (pdu) => {
    if (!session.bound || session.bound === 'receiver') {
      session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
      return;
    }
    if (Date.now() < hangUntil) {        // frozen: no answer until the hang ends
      held.push({session, pdu});
      log({ev: 'submit_sm_held', seq: pdu.sequence_number});
      return;
    }
    if (throttle.count > 0) {
      throttle.count -= 1;
      session.send(pdu.response({command_status: throttle.status}));
      log({ev: 'submit_sm_throttled', seq: pdu.sequence_number, status: throttle.status});
      return;
    }
    if (quota.tps > 0) {
      const sec = Math.floor(Date.now() / 1000);
      if (sec !== quota.second) { quota.second = sec; quota.used = 0; }
      if (quota.used >= quota.tps) {
        stats.quota_throttled++;
        session.send(pdu.response({command_status: smpp.ESME_RTHROTTLED}));
        return;
      }
      quota.used++;
    }
    accept(session, pdu);
  });
  function accept(session, pdu) {
    const id = (nextId++).toString(16).toUpperCase();
    const t = textOf(pdu);
    const rec = {
      message_id: id, seq: pdu.sequence_number, system_id: session.system_id,
      source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi,
      source_addr: pdu.source_addr,
      dest_addr_ton: pdu.dest_addr_ton, dest_addr_npi: pdu.dest_addr_npi,
      destination_addr: pdu.destination_addr,
      esm_class: pdu.esm_class, data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery,
      text: t.text, udh: t.udh, received: new Date(),
    };
    messages.push(rec);
    stats.submit_sm++;
    const wantDlr = pdu.registered_delivery & 0x01;
    const answer = () => { if (session.socket.writable) session.send(pdu.response({message_id: id})); };
    if (wantDlr && dlrFirst) {
      receipt(session, rec);
      setTimeout(answer, 50);          // the receipt surely on the wire first
    } else {
      answer();
    }
    log({ev: 'submit_sm', id, from: rec.source_addr, to: rec.destination_addr, dc: rec.data_coding,
         esm: rec.esm_class, udh: rec.udh, text: rec.text});
    if (wantDlr && !dlrFirst) {
      setTimeout(() => receipt(session, rec), DLR_DELAY_MS);
    }
  }

  // Anything else (query_sm, data_sm, submit_multi, cancel_sm, replace_sm...): generic_nack.
  session.on('pdu', (pdu) => {
    const handled = ['bind_transceiver', 'bind_transmitter', 'bind_receiver', 'enquire_link',
      'unbind', 'submit_sm', 'unbind_resp', 'deliver_sm_resp', 'data_sm_resp', 'enquire_link_resp',
      'generic_nack'];
    if (!handled.includes(pdu.command)) {
      if (!pdu.isResponse()) {
        session.send(new smpp.PDU('generic_nack', {sequence_number: pdu.sequence_number,
          command_status: smpp.ESME_RINVCMDID}));
      }
      log({ev: 'unhandled', command: pdu.command});
    }
  });
});

server.on('error', (e) => { log({ev: 'server_error', err: String(e)}); process.exit(1); });
server.listen(PORT, HOST, () => log({ev: 'listening', host: HOST, port: PORT}));

function readJson(req) {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => { try { resolve(b ? JSON.parse(b) : {}); } catch (e) { resolve({}); } });
  });
}

http.createServer(async (req, res) => {
  const send = (code, obj) => {
    res.writeHead(code, {'content-type': 'application/json'});
    res.end(JSON.stringify(obj));
  };
  const body = req.method === 'POST' ? await readJson(req) : {};
  if (req.url === '/stats') return send(200, stats);
  if (req.url === '/health') return send(200, {ok: true, sessions: sessions.size, stats});
  if (req.url === '/messages') return send(200, messages);
  if (req.url === '/reset') { messages = []; throttle = {count: 0, status: smpp.ESME_RTHROTTLED}; return send(200, {ok: true}); }
  if (req.url === '/hang') {
    hangUntil = Date.now() + (body.ms || 0);
    clearTimeout(hangTimer);              // a new hang replaces the last; {ms: 0} ends it now
    hangTimer = setTimeout(endHang, body.ms || 0);
    log({ev: 'hang', ms: body.ms});
    return send(200, {until: hangUntil});
  }
  if (req.url === '/dlr-mode') {
    if (body.mode !== 'deliver_sm' && body.mode !== 'data_sm') return send(400, {error: 'mode'});
    dlrMode = body.mode;
    return send(200, {mode: dlrMode});
  }
  if (req.url === '/dlr-first') { dlrFirst = !!body.on; return send(200, {on: dlrFirst}); }
  if (req.url === '/quota') {
    quota = {tps: body.tps || 0, second: 0, used: 0};
    return send(200, {tps: quota.tps});
  }
  if (req.url === '/throttle') {
    throttle = {count: body.count || 1, status: body.status || smpp.ESME_RTHROTTLED};
    return send(200, throttle);
  }
  if (req.url === '/drop') {
    const n = sessions.size;
    for (const s of sessions) s.socket.destroy();
    log({ev: 'drop', n});
    return send(200, {dropped: n});
  }
  if (req.url === '/unbind') {
    for (const s of sessions) s.unbind();
    return send(200, {ok: true});
  }
  if (req.url === '/mo') {
    const target = receiverOf(body.account);
    if (!target) return send(409, {error: 'no bound receiver'});
    // data_coding 0 (SMSC default alphabet, GSM 03.38 unpacked) when the text fits GSM-7, else 8 (UCS-2)
    const text = body.text || 'hello';
    const dc = body.data_coding !== undefined ? body.data_coding
      : (smpp.encodings.ASCII.match(text) ? 0 : 8);
    // Reply at once: a single-threaded test client cannot read the deliver_sm while it waits
    // for this HTTP answer. deliver_sm_resp statuses are logged and counted in /health stats.
    const pdu = {
      source_addr_ton: 1, source_addr_npi: 1, source_addr: body.from || '15550001111',
      dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: body.to || '15559998888',
      esm_class: 0, data_coding: dc, short_message: text,
    };
    if (body.sar) {
      pdu.sar_msg_ref_num = body.sar.ref; pdu.sar_total_segments = body.sar.total;
      pdu.sar_segment_seqnum = body.sar.seq;
    }
    const ok = target.deliver_sm(pdu, (resp) => log({ev: 'mo_resp', status: resp.command_status,
      from: body.from}));
    log({ev: 'mo', from: body.from, text, data_coding: dc, bind: target.bound,
         port: target.socket.remotePort});
    return send(200, {queued: ok ? 1 : 0, data_coding: dc, port: target.socket.remotePort});
  }
  send(404, {error: 'unknown'});
}).listen(CONTROL_PORT, HOST, () => log({ev: 'control_listening', port: CONTROL_PORT}));

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

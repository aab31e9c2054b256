"""Builds AMI event dicts shaped like the ones a real Asterisk 22 sent in tests/fixtures/asterisk
(same header names and value forms), for call shapes no recording shows."""
from __future__ import annotations

import itertools


class Sim:
    def __init__(self, base: int = 1795800000):
        self.base = base
        self._seq = itertools.count()
        self._chan = itertools.count(0x100)
        self.events: list[dict] = []
        self.chans: dict[str, dict] = {}

    def _uid(self) -> str:
        return f"{self.base}.{next(self._seq)}"

    def _common(self, name: str) -> dict:
        c = self.chans[name]
        return {"Channel": name, "ChannelState": c["state"], "ChannelStateDesc": c["desc"],
                "CallerIDNum": c["cid"], "CallerIDName": c["cname"],
                "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
                "Language": "en", "AccountCode": "", "Context": c["context"], "Exten": c["exten"],
                "Priority": "1", "Uniqueid": c["uid"], "Linkedid": c["linkedid"]}

    def emit(self, event: str, name: str | None = None, **headers) -> dict:
        ev = {"Event": event, "Privilege": "call,all"}
        if name:
            ev.update(self._common(name))
        ev.update(headers)
        self.events.append(ev)
        return ev

    def newchannel(self, tech_ep: str, *, context: str, exten: str, cid: str, linkedid: str | None = None,
                   incoming: bool = True, cname: str = "<unknown>") -> str:
        uid = self._uid()
        name = f"{tech_ep}-{next(self._chan):08x}"
        self.chans[name] = {"uid": uid, "linkedid": linkedid or uid, "context": context, "exten": exten,
                            "cid": cid, "cname": cname, "state": "4" if incoming else "0",
                            "desc": "Ring" if incoming else "Down"}
        self.emit("Newchannel", name)
        return name

    def local_pair(self, target: str, *, linkedid: str) -> tuple[str, str]:
        n = next(self._chan)
        names = []
        for half in (1, 2):
            uid = self._uid()
            name = f"Local/{target}-{n:08x};{half}"
            self.chans[name] = {"uid": uid, "linkedid": linkedid, "context": "from-internal",
                                "exten": target.split("@")[0], "cid": "", "cname": "",
                                "state": "0", "desc": "Down"}
            self.emit("Newchannel", name)
            names.append(name)
        self.emit("LocalBridge", LocalOneChannel=names[0], LocalOneUniqueid=self.uid(names[0]),
                  LocalTwoChannel=names[1], LocalTwoUniqueid=self.uid(names[1]))
        return names[0], names[1]

    def uid(self, name: str) -> str:
        return self.chans[name]["uid"]

    def linkedid(self, name: str) -> str:
        return self.chans[name]["linkedid"]

    def exten(self, name: str, app: str, data: str = "", *, context: str | None = None, exten: str | None = None):
        c = self.chans[name]
        if context:
            c["context"] = context
        if exten:
            c["exten"] = exten
        self.emit("Newexten", name, Extension=c["exten"], Application=app, AppData=data)

    def varset(self, name: str, var: str, value: str):
        self.emit("VarSet", name, Variable=var, Value=value)

    def up(self, name: str):
        self.chans[name].update(state="6", desc="Up")
        self.emit("Newstate", name)

    def dial(self, caller: str, dest: str):
        self.emit("DialBegin", caller, DestChannel=dest, DestUniqueid=self.uid(dest))

    def dialend(self, caller: str, dest: str, status: str):
        self.emit("DialEnd", caller, DestChannel=dest, DestUniqueid=self.uid(dest), DialStatus=status)

    def bridge(self, bridge_id: str, *names: str):
        for n in names:
            self.emit("BridgeEnter", n, BridgeUniqueid=bridge_id, BridgeType="basic")

    def unbridge(self, bridge_id: str, *names: str):
        for n in names:
            self.emit("BridgeLeave", n, BridgeUniqueid=bridge_id, BridgeType="basic")

    def hangup(self, name: str, cause: str = "16"):
        self.emit("Hangup", name, Cause=cause, **{"Cause-txt": "Normal Clearing"})

    def inbound(self, caller: str, did: str, *, trunk: str = "PJSIP/itsp", context: str = "from-trunk") -> str:
        ch = self.newchannel(trunk, context=context, exten=did, cid=caller)
        self.exten(ch, "Set", f"__FROM_DID={did}")
        self.varset(ch, "__FROM_DID", did)
        return ch

    def ring(self, caller: str, ext: str) -> str:
        ch = self.newchannel(f"PJSIP/{ext}", context="from-internal", exten="s", cid=ext,
                             linkedid=self.linkedid(caller), incoming=False)
        self.dial(caller, ch)
        return ch

    def originated_out(self, ext: str = "100", response_exten: str = "") -> str:
        """A call originated to desk phone `ext` (it starts Down in exten s), answered, then out
        through the trunk, answered there: what a *88 callback looks like. `response_exten`:
        also emit the OriginateResponse naming where the channel went on."""
        phone = self.newchannel(f"PJSIP/{ext}", context="from-internal", exten="s", cid=ext, incoming=False)
        self.up(phone)
        if response_exten:
            self.emit("OriginateResponse", Response="Success", Channel=phone, Context="from-internal",
                      Exten=response_exten, Reason="4", Uniqueid=self.uid(phone))
        trunk = self.newchannel("PJSIP/itsp", context="from-trunk", exten="s", cid="<unknown>",
                                linkedid=self.linkedid(phone), incoming=False)
        self.dial(phone, trunk)
        self.up(trunk)
        self.dialend(phone, trunk, "ANSWER")
        self.hangup(trunk)
        self.hangup(phone)
        return phone

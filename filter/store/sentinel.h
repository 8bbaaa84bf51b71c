/*
 * sentinel.h: the store on a Redis master that Redis Sentinel watches
 * (store.mode "sentinel").
 *
 * SentinelTopology sends every command to the master the sentinels name
 * now, never to an address it merely remembers: a master restarted after
 * a failover says "master" to ROLE and takes writes for about ten
 * seconds before the sentinels demote it, and writes there are lost.
 *
 * Each loop finds the master by itself: it asks the sentinels of
 * store.url in turn (the last one that answered first) for SENTINEL
 * get-master-addr-by-name store.master, the next one as soon as the one
 * before names no master (no reply within store.timeout, a refused
 * connect, nil, an error, an address that is no IP address) or after
 * 50 ms without an answer, with at most 4 unanswered at once: sentinels
 * that hang (paused, a lost route) hold the search about 50 ms each, not
 * store.timeout (routing.h: StaggeredAsk).  The first master named ends
 * the search; answers that come later are dropped, never confirmed (an
 * older master), even when the loop's store is gone by then.  The loop
 * confirms the address with ROLE on a new connection (AUTH with
 * store.user and store.password first) before it sends anything there.
 * It asks again after any failure of that connection, after the server
 * closed it, and after a READONLY, LOADING or MASTERDOWN reply.  While
 * it asks, commands wait, each until store.timeout after it was sent;
 * a command the master surely did not run (refused connect, READONLY,
 * LOADING, MASTERDOWN) is sent again to the master found next, within
 * the same time.  After an ask that found no master, the next waits
 * 100 ms.  The master's address must be an IP address (the store
 * resolves no name on a loop: keep Sentinel's announce-hostnames off).
 *
 * Each loop also subscribes to +switch-master and +promoted-slave on
 * every sentinel: when one announces another master, the loop asks that
 * sentinel at once.  Without that, after SENTINEL FAILOVER the old
 * master, alive, would take writes for about ten seconds (until the
 * sentinels reconfigure it), all lost.  With it, what is lost is the
 * writes between the replica's promotion and the sentinel's announcement
 * of it (about a second on Redis 7.0: the sentinel sees the promotion in
 * its next INFO).  When a subscription fails or its connection ends, the
 * loop asks the sentinels again before its next write (a switch may have
 * gone unheard) and subscribes to that sentinel anew a second later.
 *
 * The loops share only the record of the master: one log line when it
 * is first found and one when it changes (a failover, counted), and the
 * metrics.  The state a command needs (the link, the address) is the
 * loop's own, so the hot path takes no lock; the price is that each
 * loop asks the sentinels itself after a failover (one round trip).
 */
#pragma once

#include <memory>
#include <string>

#include "store/routing.h"
#include "util/event_loop.h"

namespace portcullis::store {

struct SentinelShared;   // sentinel.cc: the settings and the record of the master
class SentinelRouter;    // sentinel.cc: one loop's link to the master, and its search

class SentinelTopology final : public RoutedTopology<SentinelShared, SentinelRouter> {
public:
    SentinelTopology(const RedisServers& servers, Millis timeout);
    ~SentinelTopology() override;
};

}  // namespace portcullis::store

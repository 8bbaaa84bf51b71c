/*
 * cluster.h: the store on a Redis Cluster (store.mode "cluster").
 *
 * key_slot() is the slot Redis Cluster keeps KEY in: CRC16 (XMODEM) of
 * the key, or of its hash tag (what lies between the first '{' and the
 * next '}', when that is not empty), modulo 16384.
 *
 * SlotMap is one view of the cluster: its masters, each one's replicas,
 * and the master of every slot.  parse_cluster_slots() reads it from a
 * CLUSTER SLOTS reply (ASKED names the node that answered, for an entry
 * whose address is empty or NULL); it throws StoreError, naming what is
 * wrong, on a map it cannot use whole: a node named by host name (a loop
 * resolves no names: keep cluster-preferred-endpoint-type at "ip"), a
 * master of unknown address ("?"), a port out of 1-65535, a slot range
 * out of 0-16383 or backwards, a slot given twice, no slot served, more
 * than 1000 nodes.  A replica of unknown address is left out.
 * describe() lists each master with its slot ranges, for the log.
 *
 * ClusterTopology sends each command to the master of its key's slot,
 * over a link per master per loop (AUTH with store.user and
 * store.password).  Each loop keeps its own copy of the slot map, so the
 * hot path takes no lock: it reads the map at the start of the first
 * command and after a change from a node.  A reading asks the nodes it
 * knows (the map's masters, their replicas, the seeds of store.url, the
 * node that just failed last) one after another, the next one as soon as
 * the one before gives no map or after 50 ms without an answer, with at
 * most 4 unanswered at once: nodes that hang (paused, a lost route) hold
 * a reading about 50 ms each, not store.timeout.  The first usable map
 * ends the reading; the answers to it that come later are dropped, never
 * installed (an older map), even when the loop's store is gone by then.
 * It fails when every node asked failed.  A map refused leaves the one
 * there, and commands waiting for a new one go by it.  A reply of
 *   MOVED      asks for a new map and sends the command to the node
 *              named, which takes the slot when it is in the map (a
 *              node outside it serves only that command);
 *   ASK        sends ASKING and the command to the node named, the map
 *              unchanged;
 *   TRYAGAIN, CLUSTERDOWN
 *              sends it again after 25 ms (CLUSTERDOWN asks for a new map
 *              too);
 * and a failure of the link (no reply in time, a refused connect) asks
 * for a new map from another node.  Every retry happens within
 * store.timeout of the send, and a command follows at most 5 redirects.
 * A command for a slot no master serves waits for a map that has one,
 * within store.timeout.  Maps are asked for at most every 100 ms per
 * loop.  A loop keeps at most 4 links to nodes outside its map and the
 * seeds (redirect targets): the oldest idle one is closed for a new one,
 * and a redirect fails when all are busy; they go when a map is read,
 * and count for no health (the command's error names the node).
 * The loops share only the record of the map: one log line per change
 * of the masters or their slots, its version, and a count of the
 * failovers (a replica that became a master); one per map refused (per
 * node and reason, until the map changes); one per version of the map
 * when a loop has more nodes outside it than links for them.
 */
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/routing.h"
#include "util/event_loop.h"

namespace portcullis::store {

inline constexpr size_t kClusterSlots = 16384;

uint16_t key_slot(std::string_view key);

struct SlotMap {
    static constexpr uint16_t kNoMaster = 0xffff;

    std::vector<std::string> masters;                // "ip:port"
    std::vector<std::vector<std::string>> replicas;  // of each master
    std::array<uint16_t, kClusterSlots> owner;       // an index into masters, or kNoMaster

    SlotMap() { owner.fill(kNoMaster); }
    /* The index of the master NAME, added if new. */
    uint16_t master_index(const std::string& name);
    std::string describe() const;

private:
    std::unordered_map<std::string, uint16_t> index_of_;   // of masters: a map read has up to 16384 entries
};

SlotMap parse_cluster_slots(const RedisReply& reply, const std::string& asked_host);

struct ClusterShared;   // cluster.cc: the settings and the record of the map
class ClusterRouter;    // cluster.cc: one loop's map and links

class ClusterTopology final : public RoutedTopology<ClusterShared, ClusterRouter> {
public:
    ClusterTopology(const RedisServers& servers, Millis timeout);
    ~ClusterTopology() override;
};

}  // namespace portcullis::store

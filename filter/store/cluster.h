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
 * whose address is empty); it throws StoreError on a reply it cannot
 * use, such as a node named by host name (a loop resolves no names: keep
 * cluster-preferred-endpoint-type at "ip").  describe() lists each master
 * with its slot ranges, for the log.
 *
 * ClusterTopology sends each command to the master of its key's slot,
 * over a link per master per loop (AUTH with store.user and
 * store.password).  Each loop keeps its own copy of the slot map, so the
 * hot path takes no lock: it reads the map at the start of the first
 * command and after a change from a node, asking the seed nodes of
 * store.url and the nodes it knows in turn.  A reply of
 *   MOVED      updates the slot, asks for a new map, and sends the command
 *              to the node named;
 *   ASK        sends ASKING and the command to the node named, the map
 *              unchanged;
 *   TRYAGAIN, CLUSTERDOWN
 *              sends it again after 25 ms (CLUSTERDOWN asks for a new map
 *              too);
 * and a failure of the link (no reply in time, a refused connect) asks
 * for a new map from another node.  Every retry happens within
 * store.timeout of the send, and a command follows at most 5 redirects.
 * Maps are asked for at most every 100 ms per loop.  The loops share
 * only the record of the map: one log line per change of the masters or
 * their slots, its version, and a count of the failovers (a replica that
 * became a master).
 */
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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

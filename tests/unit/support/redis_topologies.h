/*
 * redis_topologies.h: a real Redis Cluster and a real Sentinel group for
 * the store's tests, on 127.0.0.1 (support/redis_server.h's servers).
 *
 * RedisCluster starts six redis-server with cluster-enabled and a
 * cluster-node-timeout of 2 s, creates the cluster with redis-cli
 * --cluster create (one replica per master), and returns once every
 * node says cluster_state:ok and every slot has a master.  layout() reads
 * who is master and who replicates whom from CLUSTER NODES (never from
 * the ports: redis-cli pairs them as it likes); seeds() is store.url for
 * it.  node(PORT) is a node, to kill or restart; wait_until_ok() waits
 * for the cluster to serve again after that; master_of(SLOT) and
 * id_of(PORT) read CLUSTER NODES and CLUSTER MYID; flush() empties every
 * master.
 *
 * SentinelGroup starts a master, two replicas of it, and three sentinels
 * watching it as "mymaster" (quorum 2, down-after 1 s, failover-timeout
 * 5 s), and returns once the replicas are linked and every sentinel knows
 * both replicas and the two other sentinels, so that a failover can
 * start at once.  master() asks a sentinel where the master is now and
 * checks that it says ROLE master; server(PORT) is one of the three data
 * servers, data_cli() and sentinel_cli() redis-cli with the passwords
 * they need; urls() is store.url for the sentinels.  Passwords protect
 * the data servers, the sentinels, or add an ACL user.
 *
 * Both throw std::runtime_error, with what they waited for, when the
 * deployment does not come up in time.
 */
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/redis_server.h"

namespace portcullis::test_support {

/* Polls CHECK every 50 ms until it holds; throws naming WHAT after LIMIT. */
template <typename Check>
void wait_for(const std::string& what, std::chrono::milliseconds limit, Check check) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!check()) {
        if (std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("timed out after " + std::to_string(limit.count()) + " ms waiting for " + what);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
    }
    return lines;
}

inline std::vector<std::string> words_of(const std::string& line) {
    std::vector<std::string> words;
    std::istringstream in(line);
    for (std::string word; in >> word;) words.push_back(word);
    return words;
}

class RedisCluster {
public:
    struct Layout {
        std::vector<int> masters;            // ports, serving slots
        std::map<int, int> replica_of;       // replica port -> master port
    };

    RedisCluster() {
        for (int i = 0; i < 6; ++i) {
            // The cluster bus is PORT + 10000: RedisServer retries another
            // port when that one is taken or out of range.
            nodes_.push_back(std::make_unique<RedisServer>(std::vector<std::string>{
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                "--repl-diskless-sync-delay", "0"}));
        }
        std::vector<std::string> create{"--cluster", "create"};
        for (const auto& node : nodes_) create.push_back("127.0.0.1:" + std::to_string(node->port()));
        create.insert(create.end(), {"--cluster-replicas", "1", "--cluster-yes"});
        const std::string output = nodes_.front()->cli(create);
        if (output.find("[OK] All 16384 slots covered") == std::string::npos) {
            throw std::runtime_error("redis-cli --cluster create failed:\n" + output);
        }
        wait_until_ok();
    }

    std::string seeds() const {
        std::string urls;
        for (const auto& node : nodes_) urls += (urls.empty() ? "" : ", ") + node->url();
        return urls;
    }

    RedisServer& node(int port) {
        for (auto& node : nodes_) {
            if (node->port() == port) return *node;
        }
        throw std::runtime_error("no cluster node on port " + std::to_string(port));
    }

    /* The layout as the node on PORT (by default any live one) sees it. */
    Layout layout(int port = 0) const {
        Layout layout;
        std::map<std::string, int> port_of;   // node id -> port
        std::vector<std::pair<int, std::string>> replicas;
        for (const auto& line : lines_of(asked(port).cli({"CLUSTER", "NODES"}))) {
            const auto words = words_of(line);
            if (words.size() < 8) continue;
            const int node_port = std::stoi(words[1].substr(words[1].find(':') + 1));
            port_of[words[0]] = node_port;
            const bool failed = words[2].find("fail") != std::string::npos && words[2].find("fail?") == std::string::npos;
            if (failed) continue;
            if (words[2].find("master") != std::string::npos && words.size() > 8) layout.masters.push_back(node_port);
            if (words[2].find("slave") != std::string::npos) replicas.emplace_back(node_port, words[3]);
        }
        for (const auto& [replica, master_id] : replicas) layout.replica_of[replica] = port_of[master_id];
        return layout;
    }

    /* Every live node says cluster_state:ok with every slot served, and
     * every live replica is in sync with its master (a replica that never
     * synced would never take over). */
    void wait_until_ok(std::chrono::milliseconds limit = std::chrono::seconds(30)) const {
        wait_for("cluster_state:ok on every node, replicas in sync", limit, [this] {
            for (const auto& node : nodes_) {
                if (!node->running()) continue;
                const std::string info = node->cli({"CLUSTER", "INFO"});
                if (info.find("cluster_state:ok") == std::string::npos) return false;
                if (info.find("cluster_slots_ok:16384") == std::string::npos) return false;
                const std::string replication = node->cli({"INFO", "replication"});
                if (replication.find("role:slave") != std::string::npos &&
                    replication.find("master_link_status:up") == std::string::npos) {
                    return false;
                }
            }
            return true;
        });
    }

    /* The port of the master serving SLOT, from CLUSTER NODES. */
    int master_of(int slot) const {
        for (const auto& line : lines_of(asked(0).cli({"CLUSTER", "NODES"}))) {
            const auto words = words_of(line);
            if (words.size() < 9 || words[2].find("master") == std::string::npos) continue;
            for (size_t i = 8; i < words.size(); ++i) {
                if (words[i].starts_with('[')) continue;   // a slot migrating
                const auto dash = words[i].find('-');
                const int first = std::stoi(words[i].substr(0, dash));
                const int last = dash == std::string::npos ? first : std::stoi(words[i].substr(dash + 1));
                if (slot >= first && slot <= last) return std::stoi(words[1].substr(words[1].find(':') + 1));
            }
        }
        throw std::runtime_error("no master serves slot " + std::to_string(slot));
    }

    std::string id_of(int port) const { return asked(port).cli({"CLUSTER", "MYID"}); }

    void flush() const {
        for (const int port : layout().masters) asked(port).cli({"FLUSHALL"});
    }

    /* How many keys the master on PORT holds. */
    long keys_on(int port) const { return std::stol(asked(port).cli({"DBSIZE"})); }

private:
    const RedisServer& asked(int port) const {
        for (const auto& node : nodes_) {
            if ((port == 0 && node->running()) || node->port() == port) return *node;
        }
        throw std::runtime_error("no live cluster node to ask");
    }

    std::vector<std::unique_ptr<RedisServer>> nodes_;
};

class SentinelGroup {
public:
    static constexpr const char* kMasterName = "mymaster";

    /* Passwords, when the group needs them: DATA for the default user of
     * the data servers (requirepass, masterauth, the sentinels'
     * auth-pass), SENTINEL for the sentinels (requirepass), and an ACL
     * user USER with USER_PASSWORD on the data servers. */
    struct Passwords {
        std::string data;
        std::string sentinel;
        std::string user;
        std::string user_password;
    };

    explicit SentinelGroup(Passwords passwords = {}) : passwords_(std::move(passwords)) {
        // A replica syncs at once, not after the 5 s Redis waits for others.
        std::vector<std::string> data_args{"--repl-diskless-sync-delay", "0"};
        if (!passwords_.data.empty()) {
            data_args.insert(data_args.end(), {"--requirepass", passwords_.data, "--masterauth", passwords_.data});
        }
        if (!passwords_.user.empty()) {
            // As redis.conf's "user NAME RULE...": each rule an argument.
            data_args.insert(data_args.end(), {"--user", passwords_.user, "on", ">" + passwords_.user_password, "~*",
                                               "&*", "+@all"});
        }
        servers_.push_back(std::make_unique<RedisServer>(data_args));
        const std::string master_port = std::to_string(servers_.front()->port());
        std::vector<std::string> replica_args = data_args;
        replica_args.insert(replica_args.end(), {"--replicaof", "127.0.0.1", master_port});
        for (int i = 0; i < 2; ++i) servers_.push_back(std::make_unique<RedisServer>(replica_args));
        std::string config = "sentinel monitor " + std::string(kMasterName) + " 127.0.0.1 " + master_port +
                             " 2\nsentinel down-after-milliseconds " + kMasterName +
                             " 1000\nsentinel failover-timeout " + kMasterName + " 5000\n";
        if (!passwords_.data.empty()) config += "sentinel auth-pass " + std::string(kMasterName) + " " + passwords_.data + "\n";
        std::vector<std::string> sentinel_args{"--sentinel"};
        if (!passwords_.sentinel.empty()) sentinel_args.insert(sentinel_args.end(), {"--requirepass", passwords_.sentinel});
        for (int i = 0; i < 3; ++i) sentinels_.push_back(std::make_unique<RedisServer>(sentinel_args, config));
        wait_until_settled();
    }

    /* store.url for the sentinels; with their password when they have one. */
    std::string urls() const {
        const std::string credentials = passwords_.sentinel.empty() ? "" : ":" + passwords_.sentinel + "@";
        std::string text;
        for (const auto& sentinel : sentinels_) {
            text += (text.empty() ? "" : ", ") + std::string("redis://") + credentials + "127.0.0.1:" +
                    std::to_string(sentinel->port());
        }
        return text;
    }

    RedisServer& sentinel(size_t index) { return *sentinels_.at(index); }

    RedisServer& server(int port) {
        for (auto& server : servers_) {
            if (server->port() == port) return *server;
        }
        throw std::runtime_error("no data server on port " + std::to_string(port));
    }

    /* redis-cli ARGS on the data server on PORT, as its default user. */
    std::string data_cli(int port, std::vector<std::string> args) {
        return server(port).cli(with_password(passwords_.data, std::move(args)));
    }

    std::string sentinel_cli(size_t index, std::vector<std::string> args) {
        return sentinel(index).cli(with_password(passwords_.sentinel, std::move(args)));
    }

    /* The port the sentinels name as master, once it says ROLE master. */
    int master() {
        int port = 0;
        wait_for("a master the sentinels name that says ROLE master", std::chrono::seconds(30), [&] {
            for (size_t i = 0; i < sentinels_.size(); ++i) {
                if (!sentinels_[i]->running()) continue;
                const auto answer = lines_of(sentinel_cli(i, {"SENTINEL", "get-master-addr-by-name", kMasterName}));
                if (answer.size() != 2) continue;
                port = std::stoi(answer[1]);
                return server(port).running() && lines_of(data_cli(port, {"ROLE"})).front() == "master";
            }
            return false;
        });
        return port;
    }

    /* The master has both replicas linked, and every sentinel knows both
     * replicas and both other sentinels and sees the master up. */
    void wait_until_settled() {
        wait_for("the sentinel group to settle", std::chrono::seconds(60), [&] {
            const int port = master();
            if (data_cli(port, {"INFO", "replication"}).find("connected_slaves:2") == std::string::npos) return false;
            for (const auto& server : servers_) {
                if (!server->running() || server->port() == port) continue;
                if (data_cli(server->port(), {"INFO", "replication"}).find("master_link_status:up") ==
                    std::string::npos) {
                    return false;
                }
            }
            for (size_t i = 0; i < sentinels_.size(); ++i) {
                if (!sentinels_[i]->running()) continue;
                const auto lines = lines_of(sentinel_cli(i, {"SENTINEL", "master", kMasterName}));
                auto value = [&](const std::string& field) {
                    for (size_t j = 0; j + 1 < lines.size(); ++j) {
                        if (lines[j] == field) return lines[j + 1];
                    }
                    return std::string();
                };
                if (value("num-slaves") != "2" || value("num-other-sentinels") != "2") return false;
                if (value("flags") != "master" || value("port") != std::to_string(port)) return false;
            }
            return true;
        });
    }

private:
    static std::vector<std::string> with_password(const std::string& password, std::vector<std::string> args) {
        if (!password.empty()) args.insert(args.begin(), {"-a", password, "--no-auth-warning"});
        return args;
    }

    Passwords passwords_;
    std::vector<std::unique_ptr<RedisServer>> servers_;     // the first started as master
    std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

}  // namespace portcullis::test_support

// ns-3 side of `cargo xtask bench compare --ns3`: the two-node topology of the podnet
// scenarios bench/ns3-conns.yaml and bench/ns3-bulk.yaml, with the same workloads.
//
//   client pod --- node-a --- switch --- node-b --- server pod
//
// Four point-to-point links stand for podnet's four links on that path (client veth, node-a's
// uplink, node-b's uplink, server veth; podnet's L2 switch is an IP router here). Every link:
// 10 Gbit/s, 50 us, a plain drop-tail queue of 1000 full frames in bytes and no queue disc
// (the default FqCoDel root qdisc is uninstalled). TCP: NewReno, 64 KiB send and receive
// buffers, MSS 1460 (1448 bytes of data with the timestamp option), no SACK, timestamps,
// window scaling on, delayed ACK 10 ms / every
// second segment, Nagle on, minimum and initial RTO 1 s: smoltcp's settings as podnet uses
// them.
//
// Usage: podnet_compare conns N REQ_BYTES RESP_BYTES | bulk BYTES
// Prints one line of JSON: workload, simulated and wall seconds of Simulator::Run, frames
// delivered by the links, connections completed or bytes received.
//
// Build: g++ -O2 -std=c++17 podnet_compare.cc $(pkg-config --cflags --libs ns3-core
//        ns3-network ns3-internet ns3-point-to-point ns3-applications ns3-traffic-control)

#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace ns3;

namespace
{

const uint16_t kPort = 80;

uint64_t g_frames = 0;      // frames received by every link end
uint64_t g_done = 0;        // connections completed (conns) or bytes received (bulk)
uint64_t g_target = 0;      // connections or bytes to reach
uint32_t g_req = 0;         // request bytes
uint32_t g_resp = 0;        // response bytes
Ipv4Address g_server;       // the server pod's address
Ptr<Node> g_clientNode;

void
CountFrame(Ptr<const Packet>)
{
    ++g_frames;
}

// --- conns: each connection sends REQ bytes, the server answers RESP bytes, the client
// --- closes and opens the next one, the server closes when it sees the client's FIN.

struct ServerConn
{
    uint32_t got = 0;
};

std::map<Ptr<Socket>, ServerConn> g_serverConns;

void
ServerRecv(Ptr<Socket> s)
{
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        if (p->GetSize() == 0)
        {
            break;
        }
        ServerConn& c = g_serverConns[s];
        c.got += p->GetSize();
        if (c.got == g_req)
        {
            s->Send(Create<Packet>(g_resp));
        }
    }
}

void
ServerPeerClose(Ptr<Socket> s)
{
    g_serverConns.erase(s);
    s->Close();
}

void
ServerAccept(Ptr<Socket> s, const Address&)
{
    g_serverConns[s] = ServerConn{};
    s->SetRecvCallback(MakeCallback(&ServerRecv));
    s->SetCloseCallbacks(MakeCallback(&ServerPeerClose), MakeCallback(&ServerPeerClose));
}

void StartConn();

uint32_t g_clientGot = 0;

void
ClientRecv(Ptr<Socket> s)
{
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        g_clientGot += p->GetSize();
    }
    if (g_clientGot == g_resp)
    {
        s->SetRecvCallback(MakeNullCallback<void, Ptr<Socket>>());
        s->Close();
        ++g_done;
        if (g_done < g_target)
        {
            Simulator::ScheduleNow(&StartConn);
        }
        else
        {
            Simulator::Stop();
        }
    }
}

void
ClientConnected(Ptr<Socket> s)
{
    s->Send(Create<Packet>(g_req));
}

void
ClientFailed(Ptr<Socket>)
{
    std::fprintf(stderr, "podnet_compare: connection %llu failed\n",
                 static_cast<unsigned long long>(g_done));
    std::exit(1);
}

void
StartConn()
{
    g_clientGot = 0;
    Ptr<Socket> s = Socket::CreateSocket(g_clientNode, TcpSocketFactory::GetTypeId());
    s->Bind();
    s->SetConnectCallback(MakeCallback(&ClientConnected), MakeCallback(&ClientFailed));
    s->SetRecvCallback(MakeCallback(&ClientRecv));
    s->Connect(InetSocketAddress(g_server, kPort));
}

// --- bulk: the client sends BYTES and closes; the server reads them all.

uint64_t g_sent = 0;

void
BulkSend(Ptr<Socket> s, uint32_t)
{
    while (g_sent < g_target)
    {
        uint32_t room = s->GetTxAvailable();
        if (room == 0)
        {
            return;
        }
        uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(room, g_target - g_sent));
        int r = s->Send(Create<Packet>(n));
        if (r <= 0)
        {
            return;
        }
        g_sent += static_cast<uint64_t>(r);
    }
    s->SetSendCallback(MakeNullCallback<void, Ptr<Socket>, uint32_t>());
    s->Close();
}

void
BulkConnected(Ptr<Socket> s)
{
    s->SetSendCallback(MakeCallback(&BulkSend));
    BulkSend(s, s->GetTxAvailable());
}

void
SinkRecv(Ptr<Socket> s)
{
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        g_done += p->GetSize();
    }
    if (g_done == g_target)
    {
        Simulator::Stop();
    }
}

void
SinkAccept(Ptr<Socket> s, const Address&)
{
    s->SetRecvCallback(MakeCallback(&SinkRecv));
    s->SetCloseCallbacks(MakeCallback(&ServerPeerClose), MakeCallback(&ServerPeerClose));
}

void
Usage()
{
    std::fprintf(stderr, "usage: podnet_compare conns N REQ_BYTES RESP_BYTES | bulk BYTES\n");
    std::exit(2);
}

} // namespace

int
main(int argc, char** argv)
{
    if (argc < 2)
    {
        Usage();
    }
    const std::string mode = argv[1];
    if (mode == "conns" && argc == 5)
    {
        g_target = std::strtoull(argv[2], nullptr, 10);
        g_req = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));
        g_resp = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
    }
    else if (mode == "bulk" && argc == 3)
    {
        g_target = std::strtoull(argv[2], nullptr, 10);
    }
    else
    {
        Usage();
    }

    // TCP as smoltcp runs it in podnet.
    Config::SetDefault("ns3::TcpL4Protocol::SocketType", TypeIdValue(TcpNewReno::GetTypeId()));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(64 * 1024));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(64 * 1024));
    // ns-3's segment size is the data a segment carries, options not taken off: 1460 less
    // the timestamp's 12 bytes, as podnet's pods carry (1460 would make 1512-byte packets).
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(1448));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(2));
    Config::SetDefault("ns3::TcpSocket::DelAckTimeout", TimeValue(MilliSeconds(10)));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(2));
    Config::SetDefault("ns3::TcpSocket::TcpNoDelay", BooleanValue(false));
    Config::SetDefault("ns3::TcpSocket::ConnTimeout", TimeValue(Seconds(1)));
    Config::SetDefault("ns3::TcpSocketBase::Sack", BooleanValue(false));
    Config::SetDefault("ns3::TcpSocketBase::Timestamp", BooleanValue(true));
    Config::SetDefault("ns3::TcpSocketBase::WindowScaling", BooleanValue(true));
    Config::SetDefault("ns3::TcpSocketBase::MinRto", TimeValue(Seconds(1)));
    Config::SetDefault("ns3::RttEstimator::InitialEstimation", TimeValue(Seconds(1)));

    NodeContainer nodes;
    nodes.Create(5); // client pod, node-a, switch, node-b, server pod
    g_clientNode = nodes.Get(0);

    PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate", StringValue("10Gbps"));
    p2p.SetChannelAttribute("Delay", StringValue("50us"));
    p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", StringValue("1514000B"));

    InternetStackHelper stack;
    stack.Install(nodes);

    Ipv4AddressHelper addrs;
    NetDeviceContainer all;
    Ipv4InterfaceContainer last;
    for (uint32_t i = 0; i < 4; ++i)
    {
        NetDeviceContainer d = p2p.Install(nodes.Get(i), nodes.Get(i + 1));
        std::string net = "10.1." + std::to_string(i + 1) + ".0";
        addrs.SetBase(net.c_str(), "255.255.255.0");
        last = addrs.Assign(d);
        all.Add(d);
    }
    // Assign() installed the default root queue disc (FqCoDel): plain FIFOs, like podnet.
    TrafficControlHelper tch;
    tch.Uninstall(all);
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();
    g_server = last.GetAddress(1);

    for (uint32_t i = 0; i < all.GetN(); ++i)
    {
        all.Get(i)->TraceConnectWithoutContext("PhyRxEnd", MakeCallback(&CountFrame));
    }

    Ptr<Socket> listener = Socket::CreateSocket(nodes.Get(4), TcpSocketFactory::GetTypeId());
    listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), kPort));
    listener->Listen();
    if (mode == "conns")
    {
        listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                    MakeCallback(&ServerAccept));
        Simulator::Schedule(Seconds(0), &StartConn);
    }
    else
    {
        listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                    MakeCallback(&SinkAccept));
        Ptr<Socket> s = Socket::CreateSocket(g_clientNode, TcpSocketFactory::GetTypeId());
        s->Bind();
        s->SetConnectCallback(MakeCallback(&BulkConnected), MakeCallback(&ClientFailed));
        s->Connect(InetSocketAddress(g_server, kPort));
    }

    // The run stops when the workload completes (or after 600 s of simulated time).
    Simulator::Stop(Seconds(600));
    auto t0 = std::chrono::steady_clock::now();
    Simulator::Run();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double simulated = Simulator::Now().GetSeconds();
    Simulator::Destroy();

    if (g_done != g_target)
    {
        std::fprintf(stderr, "podnet_compare: %s reached %llu of %llu\n", mode.c_str(),
                     static_cast<unsigned long long>(g_done),
                     static_cast<unsigned long long>(g_target));
        return 1;
    }
    std::printf("{\"workload\": \"%s\", \"simulated_s\": %.6f, \"run_wall_s\": %.6f, "
                "\"frames\": %llu, \"done\": %llu}\n",
                mode.c_str(), simulated, wall, static_cast<unsigned long long>(g_frames),
                static_cast<unsigned long long>(g_done));
    return 0;
}

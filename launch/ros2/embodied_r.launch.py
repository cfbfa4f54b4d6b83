"""Launches the Embodied-R runtime as a ROS 2 node.

    ros2 launch embodied_r embodied_r.launch.py
    ros2 launch embodied_r embodied_r.launch.py namespace:=/bot1 params:=/path/my.params.yaml

The node reads its base configuration from a TOML file (`config`, default the installed
ros2.toml) and then its ROS parameters (`params`, default the installed
embodied_r.params.yaml): every parameter whose name is a configuration key (`reasoner.model`,
`source.topic`, `ros2.cmd_vel_topic`, ...) overrides the TOML. `ros2 param dump /embodied_r`
shows the whole configuration in effect.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("embodied_r")
    return LaunchDescription([
        DeclareLaunchArgument(
            "config",
            default_value=PathJoinSubstitution([share, "config", "ros2.toml"]),
            description="The runtime's TOML configuration (the base the parameters override).",
        ),
        DeclareLaunchArgument(
            "params",
            default_value=PathJoinSubstitution([share, "config", "embodied_r.params.yaml"]),
            description="ROS parameters: configuration keys that override the TOML.",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node and its topics."
        ),
        Node(
            package="embodied_r",
            executable="embodied-r",
            name="embodied_r",
            namespace=LaunchConfiguration("namespace"),
            arguments=["run", "--config", LaunchConfiguration("config")],
            parameters=[LaunchConfiguration("params")],
            output="screen",
            emulate_tty=True,
        ),
    ])
